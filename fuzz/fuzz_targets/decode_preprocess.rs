//! Any bytes through what the server does with a request image: the header checks, the
//! decoder (in full, and for JPEGs also DCT-scaled by libjpeg-turbo), the completeness
//! checks, then both preprocessing paths (the centre crop of a
//! DINOv2/ResNet artefact and the bounded photo a hand model aligns). Must never panic,
//! and whatever it accepts must come out at the promised sizes.
#![no_main]

use handmatch_core::embed::decode::{decode_rgb, decode_rgb_scaled, DecodeLimits};
use handmatch_core::embed::preprocess::{bounded, EvalTransform};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Small limits keep each run fast; the checks are the same at any size.
    let limits = DecodeLimits {
        max_pixels: 4_000_000,
        min_side: 16,
        max_side: 4_096,
        max_aspect_ratio: 8.0,
    };
    // The DCT-scaled path keeps the short side at 20 or more: small inputs scale too.
    if let Ok(scaled) = decode_rgb_scaled(data, &limits, Some(20)) {
        let (w, h) = scaled.dimensions();
        assert!(w.min(h) >= 16 && w.max(h) <= 4_096);
        assert_eq!(EvalTransform::new(20, 16).apply(&scaled).dimensions(), (16, 16));
    }
    let Ok(rgb) = decode_rgb(data, &limits) else {
        return;
    };
    let (w, h) = rgb.dimensions();
    assert!(w.min(h) >= 16 && w.max(h) <= 4_096 && (w as u64 * h as u64) <= 4_000_000);
    let crop = EvalTransform::new(64, 56).apply(&rgb);
    assert_eq!(crop.dimensions(), (56, 56));
    let photo = bounded(rgb, 256);
    assert!(photo.width().max(photo.height()) <= 256);
});
