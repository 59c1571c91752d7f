//! `handmatch-bench search --gallery N --dim D --queries Q [--batch B] [--precision f32|f16]
//! [--threads T]`: builds an index of N random L2-normalised rows (one subject each) and
//! times Q random queries, one at a time and in batches of B, printing queries/s and, for
//! f16, the top-10 recall against the same rows in f32.

use std::collections::HashSet;
use std::time::Instant;

use handmatch_core::hand_image::Aspect;
use handmatch_core::template::l2_normalize;
use handmatch_server::index::{
    simd_level, GalleryIndex, IndexPrecision, IndexSettings, IndexedTemplate, Match,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const K: usize = 10;

#[derive(clap::Args)]
pub struct SearchArgs {
    /// Rows (subjects) in the gallery.
    #[arg(long, default_value_t = 1_000_000)]
    gallery: usize,
    #[arg(long, default_value_t = 256)]
    dim: usize,
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Queries per batched call (1: single queries only).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[arg(long, default_value = "f32")]
    precision: IndexPrecision,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

fn unit(rng: &mut ChaCha8Rng, dim: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dim)
        .map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal))
        .collect();
    l2_normalize(&mut v);
    v
}

/// The index at `precision`, and (for f16) the same rows in f32 for the recall.
fn build(a: &SearchArgs) -> (GalleryIndex, Option<GalleryIndex>) {
    let settings = |precision| IndexSettings {
        precision,
        search_threads: a.threads.max(1),
    };
    let mut index = GalleryIndex::with_settings(a.dim, settings(a.precision));
    let mut reference = (a.precision != IndexPrecision::F32)
        .then(|| GalleryIndex::with_settings(a.dim, settings(IndexPrecision::F32)));
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
    for i in 0..a.gallery {
        let t = IndexedTemplate {
            template_id: i as i64,
            aspect: Aspect::Palmar,
            embedding: unit(&mut rng, a.dim),
        };
        let subject = format!("s{i:08}");
        if let Some(r) = &mut reference {
            r.insert(&subject, [t.clone()]);
        }
        index.insert(&subject, [t]);
    }
    (index, reference)
}

pub fn run(a: SearchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.gallery > 0 && a.dim > 0 && a.queries > 0 && a.batch > 0,
        "sizes must be positive"
    );
    let started = Instant::now();
    let (index, reference) = build(&a);
    println!(
        "gallery {} x {} ({}), {} thread(s), SIMD {:?}; built in {:.1} s",
        a.gallery,
        a.dim,
        a.precision,
        a.threads,
        simd_level(),
        started.elapsed().as_secs_f64()
    );
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed ^ 0xbeef);
    let queries: Vec<Vec<f32>> = (0..a.queries).map(|_| unit(&mut rng, a.dim)).collect();
    let refs: Vec<&[f32]> = queries.iter().map(Vec::as_slice).collect();

    println!("| precision | threads | batch | queries/s | ms per call p50 |");
    println!("|---|---:|---:|---:|---:|");
    let mut rates = Vec::new();
    let mut answers = Vec::new();
    let batches: std::collections::BTreeSet<usize> = [1, a.batch].into();
    for batch in batches {
        let (per_s, p50, found) = time_batches(&index, &refs, batch);
        println!(
            "| {} | {} | {batch} | {per_s:.1} | {p50:.2} |",
            a.precision, a.threads
        );
        rates.push(per_s);
        answers = found;
    }
    let recall =
        reference.map(|r| recall(&answers, &r.search_batch(&refs, Aspect::Palmar, K, None)));
    if let Some(recall) = recall {
        println!("{} top-{K} recall vs f32: {recall:.4}", a.precision);
    }
    // One line for scripts (scripts/bench-search.sh).
    println!(
        "result engine=handmatch-{} single_qps={:.2} batch={} batch_qps={:.2} recall={}",
        a.precision,
        rates[0],
        a.batch,
        rates[rates.len() - 1],
        recall.map_or("-".into(), |r| format!("{r:.4}"))
    );
    Ok(())
}

/// Queries/s, milliseconds per call (median), and the answers.
fn time_batches(
    index: &GalleryIndex,
    queries: &[&[f32]],
    batch: usize,
) -> (f64, f64, Vec<Vec<Match>>) {
    let mut calls = Vec::new();
    let mut found = Vec::new();
    let started = Instant::now();
    for chunk in queries.chunks(batch) {
        let t = Instant::now();
        found.extend(index.search_batch(chunk, Aspect::Palmar, K, None));
        calls.push(t.elapsed().as_secs_f64());
    }
    let per_s = queries.len() as f64 / started.elapsed().as_secs_f64();
    calls.sort_by(|a, b| a.total_cmp(b));
    (per_s, calls[calls.len() / 2] * 1e3, found)
}

fn recall(got: &[Vec<Match>], exact: &[Vec<Match>]) -> f64 {
    let (mut hits, mut total) = (0, 0);
    for (g, e) in got.iter().zip(exact) {
        let want: HashSet<&str> = e.iter().map(|m| m.subject_id.as_str()).collect();
        hits += g
            .iter()
            .filter(|m| want.contains(m.subject_id.as_str()))
            .count();
        total += e.len();
    }
    hits as f64 / total.max(1) as f64
}
