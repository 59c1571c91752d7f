//! Request images → model-ready inputs: decoded, checked and transformed on the blocking
//! thread pool (never on the reactor), one image at a time per request and no more at once
//! than the admission's decoders. Errors name the image by its position.

use std::sync::Arc;
use std::time::{Duration, Instant};

use image::RgbImage;
use sha2::{Digest, Sha256};

use super::admission::{Admission, RequestCost};
use super::error::ServiceError;
use handmatch_core::embed::decode::{dimensions, DecodeLimits};
use handmatch_core::embed::metadata::ArtefactMetadata;
use handmatch_core::embed::preprocess::{decode_for_model, model_input, model_input_size};

pub struct PreparedImages {
    /// What the embedding queue takes (`preprocess::model_input`).
    pub crops: Vec<RgbImage>,
    /// Hex SHA-256 of each image's bytes.
    pub sha256: Vec<String>,
    pub decode_time: Duration,
}

/// What the request's images will cost, from their headers: their bytes plus the model
/// inputs' pixels held once prepared, and the source pixels to decode. Unreadable headers
/// count their bytes alone; decoding will refuse them.
pub fn request_cost(images: &[Vec<u8>], meta: &ArtefactMetadata) -> RequestCost {
    images.iter().fold(RequestCost::default(), |total, bytes| {
        let (w, h) = dimensions(bytes).unwrap_or((0, 0));
        let (pw, ph) = if w == 0 || h == 0 {
            (0, 0)
        } else {
            model_input_size(meta, w, h)
        };
        RequestCost {
            bytes: total.bytes + bytes.len() + pw as usize * ph as usize * 3,
            source_pixels: total.source_pixels + w as u64 * h as u64,
        }
    })
}

pub async fn prepare(
    images: Vec<Vec<u8>>,
    limits: &DecodeLimits,
    meta: &Arc<ArtefactMetadata>,
    admission: &Admission,
) -> Result<PreparedImages, ServiceError> {
    let mut crops = Vec::with_capacity(images.len());
    let mut sha256 = Vec::with_capacity(images.len());
    let mut decode_time = Duration::ZERO;
    for (i, bytes) in images.into_iter().enumerate() {
        let decoder = admission.decoder().await;
        let (limits, meta) = (limits.clone(), meta.clone());
        let (crop, sha, took) = tokio::task::spawn_blocking(move || {
            let _decoder = decoder;
            let start = Instant::now();
            let rgb = decode_for_model(&bytes, &limits, &meta)
                .map_err(|e| ServiceError::invalid(format!("images[{i}]: {e}")))?;
            let crop = model_input(&meta, rgb);
            Ok::<_, ServiceError>((crop, hex::encode(Sha256::digest(&bytes)), start.elapsed()))
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("decoding images[{i}] failed: {e}")))??;
        crops.push(crop);
        sha256.push(sha);
        decode_time += took;
    }
    Ok(PreparedImages {
        crops,
        sha256,
        decode_time,
    })
}
