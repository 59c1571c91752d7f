//! Exact top-10 search over random L2-normalised rows (one subject each): f32 and f16
//! rows, one query per call and batches of 64, on one thread. `handmatch-bench search`
//! runs the same at a million rows against FAISS (`scripts/bench-search.sh`); this bench
//! keeps a smaller gallery so that criterion's repeated samples stay short.
//!
//! cargo bench -p handmatch-server --bench search     (HANDMATCH_BENCH_GALLERY=N for another size)

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use handmatch_core::hand_image::Aspect;
use handmatch_core::template::l2_normalize;
use handmatch_server::index::{GalleryIndex, IndexPrecision, IndexSettings, IndexedTemplate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIM: usize = 256;
const BATCH: usize = 64;

fn unit(rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIM)
        .map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal))
        .collect();
    l2_normalize(&mut v);
    v
}

fn index(rows: usize, precision: IndexPrecision) -> GalleryIndex {
    let settings = IndexSettings {
        precision,
        search_threads: 1,
    };
    let mut index = GalleryIndex::with_settings(DIM, settings);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for i in 0..rows {
        let t = IndexedTemplate {
            template_id: i as i64,
            aspect: Aspect::Palmar,
            embedding: unit(&mut rng),
        };
        index.insert(&format!("s{i:08}"), [t]);
    }
    index
}

fn search(c: &mut Criterion) {
    let rows: usize = std::env::var("HANDMATCH_BENCH_GALLERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let queries: Vec<Vec<f32>> = (0..BATCH).map(|_| unit(&mut rng)).collect();
    let refs: Vec<&[f32]> = queries.iter().map(|q| q.as_slice()).collect();
    let mut group = c.benchmark_group(format!("search {rows}x{DIM} top-10"));
    group.sample_size(20);
    for precision in [IndexPrecision::F32, IndexPrecision::F16] {
        let index = index(rows, precision);
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{precision} single"), |b| {
            b.iter(|| black_box(index.search(black_box(&queries[0]), Aspect::Palmar, 10, None)))
        });
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function(format!("{precision} batch {BATCH}"), |b| {
            b.iter(|| black_box(index.search_batch(black_box(&refs), Aspect::Palmar, 10, None)))
        });
    }
    group.finish();
}

criterion_group!(benches, search);
criterion_main!(benches);
