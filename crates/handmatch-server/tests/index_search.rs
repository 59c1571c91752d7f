//! The index's search against a plain f64 ranking on random data: SIMD kernels, the
//! bounded top-k, batched queries and a scan split over threads all return the exact
//! ranking (ties within rounding aside); f16 rows score within 2e-3 of it.

use handmatch_core::hand_image::Aspect;
use handmatch_core::template::l2_normalize;
use handmatch_server::index::{
    GalleryIndex, IndexPrecision, IndexSettings, IndexedTemplate, Match,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIM: usize = 32;
/// Over the 32,768 rows one thread scans alone, so two threads split the scan.
const SUBJECTS: usize = 70_000;
const K: usize = 10;

fn unit(rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIM)
        .map(|_| rng.sample::<f32, _>(rand_distr::StandardNormal))
        .collect();
    l2_normalize(&mut v);
    v
}

struct Data {
    /// Each subject's templates (one to three).
    subjects: Vec<Vec<Vec<f32>>>,
    queries: Vec<Vec<f32>>,
}

fn data() -> Data {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let subjects = (0..SUBJECTS)
        .map(|_| {
            let n = rng.random_range(1..=3);
            (0..n).map(|_| unit(&mut rng)).collect()
        })
        .collect();
    let queries = (0..8).map(|_| unit(&mut rng)).collect();
    Data { subjects, queries }
}

fn name(i: usize) -> String {
    format!("s{i:06}")
}

fn index(d: &Data, settings: IndexSettings) -> GalleryIndex {
    let mut idx = GalleryIndex::with_settings(DIM, settings);
    let mut id = 0;
    for (i, templates) in d.subjects.iter().enumerate() {
        let indexed = templates.iter().map(|e| {
            id += 1;
            IndexedTemplate {
                template_id: id,
                aspect: Aspect::Palmar,
                embedding: e.clone(),
            }
        });
        idx.insert(&name(i), indexed);
    }
    idx
}

/// Every subject's exact cosine with `query` (the normalised mean template, in f64).
fn exact_scores(d: &Data, query: &[f32]) -> Vec<f64> {
    d.subjects
        .iter()
        .map(|templates| {
            let mut mean = vec![0f64; DIM];
            for t in templates {
                mean.iter_mut()
                    .zip(t)
                    .for_each(|(m, x)| *m += f64::from(*x));
            }
            let norm = mean.iter().map(|x| x * x).sum::<f64>().sqrt();
            mean.iter()
                .zip(query)
                .map(|(m, q)| m / norm * f64::from(*q))
                .sum()
        })
        .collect()
}

fn exact_top(scores: &[f64]) -> Vec<(usize, f64)> {
    let mut all: Vec<(usize, f64)> = scores.iter().copied().enumerate().collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(K);
    all
}

fn subject_index(m: &Match) -> usize {
    m.subject_id[1..].parse().unwrap()
}

/// `got` is the exact top-k: each score within `tolerance` of its subject's exact score,
/// and the subjects are the exact ones except where exact scores lie within `tolerance`.
fn assert_exact(what: &str, got: &[Match], scores: &[f64], tolerance: f64) -> usize {
    let top = exact_top(scores);
    assert_eq!(got.len(), K, "{what}");
    let mut same = 0;
    for (rank, (m, (want, want_score))) in got.iter().zip(&top).enumerate() {
        let i = subject_index(m);
        let exact = scores[i];
        assert!(
            (f64::from(m.score) - exact).abs() <= tolerance,
            "{what} rank {rank}: {} scored {} for {exact}",
            m.subject_id,
            m.score
        );
        assert!(
            i == *want || (exact - want_score).abs() <= 2.0 * tolerance,
            "{what} rank {rank}: {} ({exact}) where {} ({want_score})",
            m.subject_id,
            name(*want)
        );
        same += usize::from(top.iter().any(|(t, _)| *t == i));
    }
    same
}

#[test]
fn simd_batched_and_threaded_searches_rank_exactly_and_f16_within_its_rounding() {
    let d = data();
    let single = IndexSettings::default();
    let threaded = IndexSettings {
        search_threads: 2,
        ..single
    };
    let half = IndexSettings {
        precision: IndexPrecision::F16,
        ..single
    };
    let queries: Vec<&[f32]> = d.queries.iter().map(Vec::as_slice).collect();
    let f32_index = index(&d, single);
    let f16_index = index(&d, half);
    let batched = f32_index.search_batch(&queries, Aspect::Palmar, K, None);
    let split = index(&d, threaded).search_batch(&queries, Aspect::Palmar, K, None);
    let (mut f16_hits, mut total) = (0, 0);
    for (q, query) in queries.iter().enumerate() {
        let scores = exact_scores(&d, query);
        let one = f32_index.search(query, Aspect::Palmar, K, None);
        assert_exact("f32", &one, &scores, 1e-5);
        assert_eq!(batched[q], one, "a batch answers as single queries do");
        assert_eq!(split[q], one, "two threads answer as one does");
        let f16 = f16_index.search(query, Aspect::Palmar, K, None);
        f16_hits += assert_exact("f16", &f16, &scores, 2e-3);
        total += K;
    }
    let recall = f16_hits as f64 / total as f64;
    eprintln!(
        "f16 top-{K} recall against exact: {recall:.3} ({:?})",
        handmatch_server::index::simd_level()
    );
    assert!(recall >= 0.9, "f16 recall {recall}");
    let floor = f32_index.search(queries[0], Aspect::Palmar, K, Some(0.6));
    assert!(floor.iter().all(|m| m.score >= 0.6));
}
