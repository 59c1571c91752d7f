//! What the exporter's tests share: deterministic pseudo-random images and their
//! normalisation done independently of the graph.
#![allow(dead_code)] // each test binary uses its own part of it

use std::path::Path;

use handmatch_core::embed::metadata::{ArtefactMetadata, IMAGENET_MEAN, IMAGENET_STD};
use handmatch_export::artefact::{artefact_model, HeadSource};
use handmatch_export::checkpoint::Checkpoint;
use handmatch_export::onnx::ModelFile;
use handmatch_export::random_init::{self, Arch};
use ndarray::Array4;

/// The image size of the artefacts `fp32_artefact` builds.
pub const ARTEFACT_SIZE: usize = 56;

/// A random `arch` artefact at 56 px with a random MLP head, its checkpoint written in
/// `dir`: (model, metadata).
pub fn fp32_artefact(arch: Arch, dir: &Path) -> (ModelFile, ArtefactMetadata) {
    let ckpt_dir = dir.join("ckpt");
    random_init::write(arch, 3, &ckpt_dir).unwrap();
    let ckpt = Checkpoint::open(&ckpt_dir).unwrap();
    let head = HeadSource::Random {
        hidden: 128,
        embedding_dim: 32,
        seed: 5,
    };
    artefact_model(&ckpt, ARTEFACT_SIZE, head, None).unwrap()
}

/// `[N, S, S, 3]` uint8 images that differ from pixel to pixel and with `seed`.
pub fn images(n: usize, s: usize, seed: u32) -> Array4<u8> {
    Array4::from_shape_fn((n, s, s, 3), |(i, y, x, c)| {
        let v = (i as u32 * 7919 + y as u32 * 31 + x as u32 * 17 + c as u32 * 101 + seed)
            .wrapping_mul(2654435761);
        (v >> 24) as u8
    })
}

/// `(x/255 − mean)/std` in `[N, 3, S, S]`, the textbook way.
pub fn normalised(images: &Array4<u8>) -> Array4<f32> {
    let (n, s, _, _) = images.dim();
    Array4::from_shape_fn((n, 3, s, s), |(i, c, y, x)| {
        (images[[i, y, x, c]] as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
    })
}
