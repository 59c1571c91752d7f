//! Request images → model-ready crops: decoded, checked and transformed on the blocking
//! thread pool (never on the reactor). Errors name the image by its position.

use std::time::{Duration, Instant};

use image::RgbImage;
use sha2::{Digest, Sha256};

use super::error::ServiceError;
use handmatch_core::embed::decode::{decode_rgb, DecodeLimits};
use handmatch_core::embed::metadata::ArtefactMetadata;
use handmatch_core::embed::preprocess::model_input;

pub struct PreparedImages {
    /// What the embedding queue takes (`preprocess::model_input`).
    pub crops: Vec<RgbImage>,
    /// Hex SHA-256 of each image's bytes.
    pub sha256: Vec<String>,
    pub decode_time: Duration,
}

pub async fn prepare(
    images: Vec<Vec<u8>>,
    limits: DecodeLimits,
    meta: std::sync::Arc<ArtefactMetadata>,
) -> Result<PreparedImages, ServiceError> {
    tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let mut crops = Vec::with_capacity(images.len());
        let mut sha256 = Vec::with_capacity(images.len());
        for (i, bytes) in images.iter().enumerate() {
            let rgb = decode_rgb(bytes, &limits)
                .map_err(|e| ServiceError::invalid(format!("images[{i}]: {e}")))?;
            crops.push(model_input(&meta, rgb));
            sha256.push(hex::encode(Sha256::digest(bytes)));
        }
        Ok(PreparedImages {
            crops,
            sha256,
            decode_time: start.elapsed(),
        })
    })
    .await
    .map_err(|e| ServiceError::Internal(format!("image decoding task failed: {e}")))?
}
