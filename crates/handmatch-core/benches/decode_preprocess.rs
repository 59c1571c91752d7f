//! Decode + preprocess of one 1600 x 1200 JPEG for a 224 model (resize the short side to
//! 256, centre-crop 224): full decoding against DCT-scaled decoding, the two `decode`
//! modes an artefact can record. `HANDMATCH_BENCH_JPEG=FILE` benches your own photo; the
//! default is a synthetic hand drawn at 1600 x 1200.
//!
//! cargo bench -p handmatch-core --bench decode_preprocess

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use handmatch_core::dataset::synth::first_photo;
use handmatch_core::embed::decode::{decode_rgb_scaled, DecodeLimits, DecodeMode};
use handmatch_core::embed::preprocess::{scaled_short_side, EvalTransform};

fn photo() -> Vec<u8> {
    if let Some(path) = std::env::var_os("HANDMATCH_BENCH_JPEG") {
        return std::fs::read(&path).expect("HANDMATCH_BENCH_JPEG names a readable file");
    }
    first_photo(1600, 1200).unwrap()
}

fn decode_preprocess(c: &mut Criterion) {
    let bytes = photo();
    let transform = EvalTransform::new(256, 224);
    let limits = DecodeLimits::default();
    let mut group = c.benchmark_group("decode+preprocess 224");
    for mode in [DecodeMode::Full, DecodeMode::DctScaled] {
        let min_short_side = scaled_short_side(mode, transform.resize_short_side);
        group.bench_function(mode.as_str(), |b| {
            b.iter(|| {
                let rgb = decode_rgb_scaled(black_box(&bytes), &limits, min_short_side).unwrap();
                black_box(transform.apply(&rgb))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode_preprocess);
criterion_main!(benches);
