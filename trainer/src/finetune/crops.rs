//! The aligned 224-pixel crops that fine-tuning trains on: every image decoded and aligned
//! once by the hand backbone (the artefact's own alignment), kept as uint8 in a safetensors
//! cache keyed by the backbone and the image list; for backbones without alignment, the
//! centre crop. Augmentation happens later, per batch.

use std::collections::HashMap;
use std::path::Path;

use handmatch_core::atomic_file::AtomicFile;
use handmatch_core::embed::backbone_session::BackboneSession;
use handmatch_core::embed::metadata::{keys, ArtefactMetadata};
use handmatch_core::embed::preprocess::{default_decode, scaled_short_side, EvalTransform};
use handmatch_core::embed::RuntimeOptions;
use handmatch_core::hand::{AlignmentSpec, HandAligner};
use handmatch_core::hand_image::HandImage;
use handmatch_core::progress;
use image::RgbImage;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use crate::extract::{decode_images, image_list_hash, CachedImage};

pub struct AlignedCrops {
    /// The images a hand was found in, in dataset order.
    pub images: Vec<CachedImage>,
    pub side: u32,
    /// `[N, side, side, 3]` uint8.
    pixels: Vec<u8>,
}

impl AlignedCrops {
    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    pub fn crop(&self, i: usize) -> RgbImage {
        let n = (self.side * self.side * 3) as usize;
        RgbImage::from_raw(
            self.side,
            self.side,
            self.pixels[i * n..(i + 1) * n].to_vec(),
        )
        .expect("a whole crop")
    }

    /// Aligns `images` with the hand backbone at `backbone` (or reuses `cache` when it was
    /// made from the same backbone and images).
    pub fn build(
        images: &[&HandImage],
        backbone: &Path,
        cache: &Path,
        runtime: &RuntimeOptions,
        progress: bool,
    ) -> anyhow::Result<Self> {
        let mut session = BackboneSession::open(backbone, runtime)?;
        let spec: AlignmentSpec = serde_json::from_str(
            &session
                .custom_metadata(keys::HAND_ALIGNMENT)
                .ok_or_else(|| anyhow::anyhow!("{}: not a hand backbone", backbone.display()))?,
        )?;
        let side: u32 = session
            .custom_metadata(keys::INPUT_SIZE)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("{}: no input_size", backbone.display()))?;
        let key = format!(
            "{}:{}:{side}",
            session.custom_metadata(keys::MODEL_ID).unwrap_or_default(),
            image_list_hash(images)
        );
        if let Some(crops) = load(cache, &key) {
            return Ok(crops);
        }
        let crops = align_all(&mut session, images, spec, side, progress)?;
        save(&crops, cache, &key)?;
        Ok(crops)
    }
}

impl AlignedCrops {
    /// The same crops at `side` pixels (antialiased), for a network whose input is smaller
    /// than the alignment's.
    pub fn resized(&self, side: u32) -> Self {
        let pixels = (0..self.len())
            .flat_map(|i| handmatch_core::resize::resize(&self.crop(i), side, side).into_raw())
            .collect();
        AlignedCrops {
            images: self.images.clone(),
            side,
            pixels,
        }
    }

    /// For backbones without alignment (DINOv2): every image decoded and centre-cropped to
    /// `side` as the artefact's evaluation transform does, so training sees the served
    /// pixels. Not cached: cheap next to a training step of such a network.
    pub fn centre_cropped(images: &[&HandImage], side: u32) -> anyhow::Result<Self> {
        let short_side = ArtefactMetadata::resize_for(side);
        let transform = EvalTransform::new(short_side, side);
        let decode = scaled_short_side(default_decode(false), short_side);
        let mut pixels = Vec::new();
        for chunk in images.chunks(16) {
            for image in decode_images(chunk, decode)? {
                pixels.extend_from_slice(transform.apply(&image).as_raw());
            }
        }
        Ok(AlignedCrops {
            images: images.iter().map(|img| CachedImage::of(img)).collect(),
            side,
            pixels,
        })
    }
}

fn align_all(
    session: &mut BackboneSession,
    images: &[&HandImage],
    spec: AlignmentSpec,
    side: u32,
    progress: bool,
) -> anyhow::Result<AlignedCrops> {
    let aligner = HandAligner::new(spec, side);
    let short_side = scaled_short_side(default_decode(true), ArtefactMetadata::resize_for(side));
    let bar = progress::bar(images.len() as u64, "align", "images", progress);
    let mut kept = Vec::new();
    let mut pixels = Vec::new();
    for chunk in images.chunks(4) {
        let decoded = decode_images(chunk, short_side)?;
        let aligned = aligner.align(session, &decoded.iter().collect::<Vec<_>>())?;
        for (img, hand) in chunk.iter().zip(aligned) {
            match hand {
                Ok(h) => {
                    kept.push(CachedImage::of(img));
                    pixels.extend_from_slice(h.crop.as_raw());
                }
                Err(_) => tracing::warn!("no hand found in {}; left out", img.path.display()),
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(AlignedCrops {
        images: kept,
        side,
        pixels,
    })
}

fn save(crops: &AlignedCrops, path: &Path, key: &str) -> anyhow::Result<()> {
    let s = crops.side as usize;
    let view = TensorView::new(Dtype::U8, vec![crops.len(), s, s, 3], &crops.pixels)?;
    let meta = HashMap::from([
        ("key".to_string(), key.to_string()),
        ("images".to_string(), serde_json::to_string(&crops.images)?),
    ]);
    let bytes = safetensors::serialize([("crops", view)], Some(meta))?;
    AtomicFile::write(path, &bytes)?;
    Ok(())
}

fn load(path: &Path, key: &str) -> Option<AlignedCrops> {
    let bytes = std::fs::read(path).ok()?;
    let (_, header) = SafeTensors::read_metadata(&bytes).ok()?;
    let meta = header.metadata().as_ref()?;
    if meta.get("key")? != key {
        return None;
    }
    let images: Vec<CachedImage> = serde_json::from_str(meta.get("images")?).ok()?;
    let st = SafeTensors::deserialize(&bytes).ok()?;
    let t = st.tensor("crops").ok()?;
    Some(AlignedCrops {
        images,
        side: t.shape()[1] as u32,
        pixels: t.data().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use handmatch_core::hand_image::Aspect;

    fn image(subject: &str) -> CachedImage {
        CachedImage {
            subject: subject.into(),
            aspect: Aspect::Dorsal,
            accessories: false,
            image_name: format!("{subject}.jpg"),
        }
    }

    #[test]
    fn resized_crops_keep_each_image_and_its_colours() {
        let (side, colours) = (8u32, [[200u8, 40, 10], [5, 90, 250]]);
        let pixels = colours
            .iter()
            .flat_map(|c| c.repeat((side * side) as usize))
            .collect();
        let crops = AlignedCrops {
            images: vec![image("a"), image("b")],
            side,
            pixels,
        };
        let small = crops.resized(3);
        assert_eq!((small.len(), small.side), (2, 3));
        assert_eq!(small.images, crops.images);
        for (i, colour) in colours.iter().enumerate() {
            let crop = small.crop(i);
            assert_eq!(crop.dimensions(), (3, 3));
            for p in crop.pixels() {
                let off = p.0.iter().zip(colour).map(|(a, b)| a.abs_diff(*b)).max();
                assert!(off <= Some(1), "crop {i}: {p:?} against {colour:?}");
            }
        }
    }
}
