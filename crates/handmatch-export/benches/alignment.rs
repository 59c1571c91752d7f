//! Hand alignment of one photo: the landmark network on the four coarse rotations, then
//! the similarity warp to the 224-pixel crop; the whole of what a hand model does before
//! its embedding branch. Needs the imported hand landmark model (`scripts/setup.sh`).
//! `HANDMATCH_BENCH_JPEG=FILE` aligns your own photo; the default is a synthetic hand at
//! 640 x 480. `HANDMATCH_BENCH_ARTEFACTS=A.onnx,B.onnx` also times the whole embedding of
//! that photo through each of those artefacts, in the same run (say, one built on the
//! fp32 hand network and one on an int8 network from `handmatch-train quantize-hand`).
//!
//! cargo bench -p handmatch-export --bench alignment

use std::hint::black_box;
use std::path::Path;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use handmatch_core::dataset::synth::first_photo;
use handmatch_core::embed::decode::{decode_rgb, DecodeLimits};
use handmatch_core::embed::preprocess::model_input;
use handmatch_core::embed::{EmbeddingSession, RuntimeOptions};
use handmatch_export::artefact::{artefact_model, HeadSource};
use handmatch_export::backbone::hand::DEFAULT_MODEL;
use handmatch_export::backbone::HandModel;
use image::RgbImage;

fn photo() -> Vec<u8> {
    if let Some(path) = std::env::var_os("HANDMATCH_BENCH_JPEG") {
        return std::fs::read(&path).expect("HANDMATCH_BENCH_JPEG names a readable file");
    }
    first_photo(640, 480).unwrap()
}

/// The photo as the server prepares it for `session`'s artefact.
fn prepared_photo(session: &EmbeddingSession) -> RgbImage {
    let rgb = decode_rgb(&photo(), &DecodeLimits::default()).unwrap();
    model_input(session.metadata(), rgb)
}

fn alignment(c: &mut Criterion) {
    let landmarks = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(DEFAULT_MODEL);
    let hand = HandModel::open(&landmarks).unwrap_or_else(|e| {
        panic!("{e}: run scripts/setup.sh, which imports the hand landmark model")
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hand.onnx");
    let head = HeadSource::Random {
        hidden: 128,
        embedding_dim: 64,
        seed: 3,
    };
    let (model, _) = artefact_model(&hand, 224, head, None).unwrap();
    model.save(&path).unwrap();
    let mut session = EmbeddingSession::open(&path, &RuntimeOptions::default()).unwrap();
    let aligner = session.hand_aligner().expect("a hand model aligns");
    let image = prepared_photo(&session);
    let mut group = c.benchmark_group("hand alignment");
    group.sample_size(20);
    group.bench_function("landmarks + warp, one photo", |b| {
        b.iter(|| black_box(aligner.align(&mut session, &[black_box(&image)]).unwrap()))
    });
    group.bench_function("alignment + embedding, one photo", |b| {
        b.iter(|| black_box(session.embed_inputs(&[black_box(&image)]).unwrap()))
    });
    for path in std::env::var("HANDMATCH_BENCH_ARTEFACTS")
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
    {
        bench_artefact(&mut group, Path::new(path));
    }
    group.finish();
}

fn bench_artefact(group: &mut BenchmarkGroup<'_, WallTime>, path: &Path) {
    let mut session = EmbeddingSession::open(path, &RuntimeOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let image = prepared_photo(&session);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    group.bench_function(format!("embedding, one photo: {name}"), |b| {
        b.iter(|| black_box(session.embed_inputs(&[black_box(&image)]).unwrap()))
    });
}

criterion_group!(benches, alignment);
criterion_main!(benches);
