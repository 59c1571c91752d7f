//! Decode + preprocess of one 1600 x 1200 JPEG for a 224 model (resize the short side to
//! 256, centre-crop 224): full decoding against DCT-scaled decoding, the two `decode`
//! modes an artefact can record. `HANDMATCH_BENCH_JPEG=FILE` benches your own photo; the
//! default is a synthetic hand drawn at 1600 x 1200.
//!
//! cargo bench -p handmatch-core --bench decode_preprocess

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use handmatch_core::dataset::synth::first_photo;
use handmatch_core::embed::decode::{decode_rgb_scaled, dimensions, DecodeLimits, DecodeMode};
use handmatch_core::embed::jpeg_scaled::{decode_reduced, reduction_for};
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

/// Where the DCT-scaled path's time goes: libjpeg-turbo's own decode at the chosen scale
/// (entropy decoding of the whole file, which no scaling avoids, plus the reduced inverse
/// transform), and the resize and crop of its output. The rest of `dct-scaled` above is
/// the checks before decoding (format, header limits, completeness, orientation). The
/// decode at 1/8, too small for a 224 model, is the floor of any scaled decode: the
/// entropy decoding and the cheapest inverse transform.
fn dct_scaled_stages(c: &mut Criterion) {
    let bytes = photo();
    let transform = EvalTransform::new(256, 224);
    let (width, height) = dimensions(&bytes).expect("a readable header");
    let reduction = reduction_for(width, height, transform.resize_short_side);
    let reduced = decode_reduced(&bytes, reduction).unwrap().unwrap();
    let mut group = c.benchmark_group("dct-scaled stages");
    group.bench_function(format!("libjpeg-turbo alone at 1/{reduction}"), |b| {
        b.iter(|| black_box(decode_reduced(black_box(&bytes), reduction).unwrap()))
    });
    group.bench_function("libjpeg-turbo alone at 1/8 (the floor)", |b| {
        b.iter(|| black_box(decode_reduced(black_box(&bytes), 8).unwrap()))
    });
    group.bench_function("resize and crop alone", |b| {
        b.iter(|| black_box(transform.apply(black_box(&reduced))))
    });
    group.finish();
}

criterion_group!(benches, decode_preprocess, dct_scaled_stages);
criterion_main!(benches);
