//! Gradient checks of the training losses: candle's backward pass against central finite
//! differences, in F64, through the L2 normalisation the head applies (the variable is the
//! un-normalised embedding, as in training).
//!
//! Finite differences are only meaningful where the loss is smooth: mining picks
//! (argmax/argmin, the semi-hard "farther than the positive" test, batch-all's "non-zero"
//! filter) and hinges (`max(0, ·)`) are piecewise. The inputs come from a fixed seed and
//! [`assert_away_from_kinks`] proves that every comparison and hinge argument is at least
//! `KINK_CLEARANCE` away from switching, far more than a step of `H` can move it.

use candle_core::{DType, Device, Result, Tensor, Var};
use handmatch_trainer::fit::{
    l2_normalize_rows, ContrastiveLoss, CrossBatchMemory, Mining, TripletLoss, View,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const H: f64 = 1e-6;
const TOLERANCE: f64 = 1e-6;
const KINK_CLEARANCE: f64 = 1e-3;
const EMBEDDING_DIM: usize = 4;

/// 3 subjects, both views, 1–2 samples each: subject 0 has two dorsal rows, subject 1 two
/// palmar rows, so semi-hard and batch-all see several positives per anchor.
fn batch_labels() -> (Vec<u32>, Vec<View>) {
    use View::{Dorsal, Palmar};
    (
        vec![0, 0, 0, 1, 1, 1, 2, 2],
        vec![
            Dorsal, Dorsal, Palmar, Dorsal, Palmar, Palmar, Dorsal, Palmar,
        ],
    )
}

fn random_rows(rows: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..rows * EMBEDDING_DIM)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect()
}

fn tensor(values: &[f64]) -> Tensor {
    Tensor::from_vec(
        values.to_vec(),
        (values.len() / EMBEDDING_DIM, EMBEDDING_DIM),
        &Device::Cpu,
    )
    .unwrap()
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

fn normalized_rows(values: &[f64]) -> Vec<Vec<f64>> {
    values
        .chunks(EMBEDDING_DIM)
        .map(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            row.iter().map(|v| v / norm).collect()
        })
        .collect()
}

/// Embedding rows with their labels.
#[derive(Clone, Copy)]
struct Labelled<'a> {
    rows: &'a [Vec<f64>],
    subjects: &'a [u32],
    views: &'a [View],
}

/// A loss on `(emb, subjects, views)`.
type BatchLoss<'a> = dyn Fn(&Tensor, &[u32], &[View]) -> Result<Tensor> + 'a;

/// Fails unless, for every anchor, all its cross-view candidate distances differ pairwise
/// by `KINK_CLEARANCE` (so no mining choice can flip), no distance lies within it of
/// `d_positive + margin` for any positive of that anchor (no triplet hinge can flip), and
/// no distance lies within it of `contrastive_margin` (no contrastive hinge can flip).
fn assert_away_from_kinks(
    anchors: Labelled<'_>,
    candidates: Labelled<'_>,
    triplet_margin: f64,
    contrastive_margin: f64,
) {
    for (i, anchor) in anchors.rows.iter().enumerate() {
        let cross: Vec<(f64, bool)> = candidates
            .rows
            .iter()
            .enumerate()
            .filter(|(j, _)| candidates.views[*j] != anchors.views[i])
            .map(|(j, c)| {
                (
                    distance(anchor, c),
                    candidates.subjects[j] == anchors.subjects[i],
                )
            })
            .collect();
        for (a, (d, _)) in cross.iter().enumerate() {
            assert!(
                (d - contrastive_margin).abs() > KINK_CLEARANCE,
                "contrastive hinge kink at anchor {i}"
            );
            for (d_other, _) in &cross[a + 1..] {
                assert!(
                    (d - d_other).abs() > KINK_CLEARANCE,
                    "distance tie at anchor {i}"
                );
            }
        }
        for (d_ap, _) in cross.iter().filter(|(_, positive)| *positive) {
            for (d_an, _) in cross.iter().filter(|(_, positive)| !*positive) {
                assert!(
                    (d_ap - d_an + triplet_margin).abs() > KINK_CLEARANCE,
                    "triplet hinge kink at anchor {i}"
                );
            }
        }
    }
}

/// Max of `|analytic − numeric| / max(1, |analytic|)` over all entries, and the largest
/// analytic gradient magnitude (to prove the check is not vacuous).
fn gradient_error(values: &[f64], loss: &dyn Fn(&Tensor) -> Result<Tensor>) -> (f64, f64) {
    let x = Var::from_tensor(&tensor(values)).unwrap();
    let emb = l2_normalize_rows(x.as_tensor()).unwrap();
    let grads = loss(&emb).unwrap().backward().unwrap();
    let analytic = grads
        .get(x.as_tensor())
        .expect("the loss reaches the embeddings")
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let loss_at = |values: &[f64]| {
        let emb = l2_normalize_rows(&tensor(values)).unwrap();
        loss(&emb).unwrap().to_scalar::<f64>().unwrap()
    };
    let mut worst: f64 = 0.0;
    let mut largest: f64 = 0.0;
    for (index, grad) in analytic.iter().enumerate() {
        let mut plus = values.to_vec();
        plus[index] += H;
        let mut minus = values.to_vec();
        minus[index] -= H;
        let numeric = (loss_at(&plus) - loss_at(&minus)) / (2.0 * H);
        worst = worst.max((grad - numeric).abs() / grad.abs().max(1.0));
        largest = largest.max(grad.abs());
    }
    (worst, largest)
}

fn check_batch_gradient(name: &str, seed: u64, loss: &BatchLoss<'_>) {
    let (subjects, views) = batch_labels();
    let values = random_rows(subjects.len(), seed);
    let rows = normalized_rows(&values);
    let batch = Labelled {
        rows: &rows,
        subjects: &subjects,
        views: &views,
    };
    assert_away_from_kinks(batch, batch, 0.5, 2.0);
    let (error, largest) = gradient_error(&values, &|emb| loss(emb, &subjects, &views));
    assert!(largest > 1e-3, "{name}: gradient vanishes ({largest})");
    assert!(error <= TOLERANCE, "{name}: gradient error {error}");
}

fn triplet(mining: Mining, soft_margin: bool) -> TripletLoss {
    TripletLoss {
        margin: 0.5,
        mining,
        soft_margin,
    }
}

#[test]
fn batch_hard_gradient_matches_finite_differences() {
    let loss = triplet(Mining::BatchHard, false);
    check_batch_gradient("batch-hard", 1, &|e, s, v| loss.forward(e, s, v));
}

#[test]
fn semi_hard_gradient_matches_finite_differences() {
    let loss = triplet(Mining::SemiHard, false);
    check_batch_gradient("semi-hard", 1, &|e, s, v| loss.forward(e, s, v));
}

#[test]
fn batch_all_gradient_matches_finite_differences() {
    let loss = triplet(Mining::All, false);
    check_batch_gradient("batch-all", 1, &|e, s, v| loss.forward(e, s, v));
}

#[test]
fn soft_margin_gradient_matches_finite_differences() {
    let loss = triplet(Mining::BatchHard, true);
    check_batch_gradient("soft-margin", 1, &|e, s, v| loss.forward(e, s, v));
}

#[test]
fn contrastive_gradient_matches_finite_differences() {
    let loss = ContrastiveLoss::default();
    check_batch_gradient("contrastive", 1, &|e, s, v| loss.forward(e, s, v));
}

#[test]
fn batch_hard_with_memory_gradient_matches_finite_differences() {
    let (subjects, views) = batch_labels();
    let values = random_rows(subjects.len(), 1);
    // The memory holds an earlier batch: subjects 1 and 2 again (extra positives) and two
    // subjects absent from this batch (extra negatives).
    let memory_subjects = [1, 2, 3, 3, 4, 4];
    let memory_views = [
        View::Palmar,
        View::Dorsal,
        View::Dorsal,
        View::Palmar,
        View::Dorsal,
        View::Palmar,
    ];
    let memory_values = random_rows(memory_subjects.len(), 2);
    let mut memory = CrossBatchMemory::new(16);
    memory
        .push(
            &l2_normalize_rows(&tensor(&memory_values)).unwrap(),
            &memory_subjects,
            &memory_views,
        )
        .unwrap();

    let rows = normalized_rows(&values);
    let candidates = [rows.clone(), normalized_rows(&memory_values)].concat();
    let candidate_subjects = [&subjects[..], &memory_subjects].concat();
    let candidate_views = [&views[..], &memory_views].concat();
    let anchors = Labelled {
        rows: &rows,
        subjects: &subjects,
        views: &views,
    };
    let candidates = Labelled {
        rows: &candidates,
        subjects: &candidate_subjects,
        views: &candidate_views,
    };
    assert_away_from_kinks(anchors, candidates, 0.5, 2.0);

    let loss = triplet(Mining::BatchHard, false);
    let with_memory =
        |emb: &Tensor| loss.forward_with_memory(emb, &subjects, &views, Some(&memory));
    let (error, largest) = gradient_error(&values, &with_memory);
    assert!(largest > 1e-3, "gradient vanishes ({largest})");
    assert!(error <= TOLERANCE, "gradient error {error}");

    // The memory must change the mining, or this test checks nothing beyond batch-hard.
    let emb = l2_normalize_rows(&tensor(&values)).unwrap();
    let alone = loss
        .forward(&emb, &subjects, &views)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let helped = with_memory(&emb).unwrap().to_scalar::<f64>().unwrap();
    assert!((alone - helped).abs() > 1e-6, "{alone} vs {helped}");
}

/// Each subject on its own axis: positives coincide, negatives are √2 apart.
fn separated() -> Tensor {
    let (subjects, _) = batch_labels();
    let values: Vec<f64> = subjects
        .iter()
        .flat_map(|&s| (0..EMBEDDING_DIM).map(move |axis| f64::from(axis == s as usize)))
        .collect();
    tensor(&values)
}

/// Every row the same unit vector.
fn collapsed() -> Tensor {
    let (subjects, _) = batch_labels();
    let values: Vec<f64> = subjects.iter().flat_map(|_| [1.0, 0.0, 0.0, 0.0]).collect();
    tensor(&values)
}

fn loss_value(loss: &BatchLoss<'_>, emb: &Tensor) -> f64 {
    let (subjects, views) = batch_labels();
    loss(emb, &subjects, &views)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

#[test]
fn hinge_losses_vanish_when_separated_and_not_when_collapsed() {
    for mining in [Mining::BatchHard, Mining::SemiHard, Mining::All] {
        let loss = triplet(mining, false);
        let f = |e: &Tensor, s: &[u32], v: &[View]| loss.forward(e, s, v);
        assert!(loss_value(&f, &separated()) < 1e-9, "{mining:?}");
        // Collapsed: every d_ap = d_an, so every triplet costs exactly the margin.
        assert!(
            (loss_value(&f, &collapsed()) - 0.5).abs() < 1e-6,
            "{mining:?}"
        );
    }
    // A margin of 1 < √2 leaves separated negatives alone; positives coincide.
    let loss = ContrastiveLoss { margin: 1.0 };
    let f = |e: &Tensor, s: &[u32], v: &[View]| loss.forward(e, s, v);
    assert!(loss_value(&f, &separated()) < 1e-9);
    assert!(loss_value(&f, &collapsed()) > 0.5);
}

#[test]
fn margin_free_losses_are_smaller_when_separated_than_collapsed() {
    let soft = triplet(Mining::BatchHard, true);
    let soft = |e: &Tensor, s: &[u32], v: &[View]| soft.forward(e, s, v);
    // log(1 + e^0) when collapsed, log(1 + e^−√2) when separated.
    assert!((loss_value(&soft, &collapsed()) - 2f64.ln()).abs() < 1e-6);
    assert!((loss_value(&soft, &separated()) - (-(2f64.sqrt())).exp().ln_1p()).abs() < 1e-6);

    // The default margin 2 pushes even orthogonal negatives, so only its ordering holds.
    let contrastive = ContrastiveLoss::default();
    let contrastive = |e: &Tensor, s: &[u32], v: &[View]| contrastive.forward(e, s, v);
    assert!(loss_value(&contrastive, &separated()) < loss_value(&contrastive, &collapsed()));
}

#[test]
fn losses_run_in_f32() {
    let (subjects, views) = batch_labels();
    let emb = l2_normalize_rows(
        &tensor(&random_rows(subjects.len(), 5))
            .to_dtype(DType::F32)
            .unwrap(),
    )
    .unwrap();
    let mut memory = CrossBatchMemory::new(4);
    memory.push(&emb, &subjects, &views).unwrap();
    for mining in [Mining::BatchHard, Mining::SemiHard, Mining::All] {
        let loss = triplet(mining, false)
            .forward_with_memory(&emb, &subjects, &views, Some(&memory))
            .unwrap();
        assert_eq!(loss.dtype(), DType::F32);
        assert!(loss.to_scalar::<f32>().unwrap().is_finite());
    }
    let loss = ContrastiveLoss::default()
        .forward(&emb, &subjects, &views)
        .unwrap();
    assert!(loss.to_scalar::<f32>().unwrap().is_finite());
}

/// The triplet loss written out directly from its definition, to check the values the
/// gathered tensors produce (the gradient checks only prove they are differentiated right).
fn reference_triplet(loss: &TripletLoss, anchors: Labelled<'_>, candidates: Labelled<'_>) -> f64 {
    let penalty = |gap: f64| {
        if loss.soft_margin {
            gap.exp().ln_1p()
        } else {
            (gap + loss.margin).max(0.0)
        }
    };
    let mut directions = Vec::new();
    for anchor_view in [View::Dorsal, View::Palmar] {
        let mut terms = Vec::new();
        let mut any_valid = false;
        for (i, anchor) in anchors.rows.iter().enumerate() {
            if anchors.views[i] != anchor_view {
                continue;
            }
            let cross = |same: bool| -> Vec<f64> {
                (0..candidates.rows.len())
                    .filter(|&j| candidates.views[j] != anchor_view)
                    .filter(|&j| (candidates.subjects[j] == anchors.subjects[i]) == same)
                    .map(|j| distance(anchor, &candidates.rows[j]))
                    .collect()
            };
            let (positives, negatives) = (cross(true), cross(false));
            if positives.is_empty() || negatives.is_empty() {
                continue;
            }
            any_valid = true;
            let closest = |ds: &mut dyn Iterator<Item = f64>| ds.fold(f64::INFINITY, f64::min);
            let hardest_negative = closest(&mut negatives.iter().copied());
            match loss.mining {
                Mining::BatchHard => {
                    let farthest = positives.iter().copied().fold(0.0, f64::max);
                    terms.push(penalty(farthest - hardest_negative));
                }
                Mining::SemiHard => {
                    for &p in &positives {
                        let semi = closest(&mut negatives.iter().copied().filter(|&n| n > p));
                        let n = if semi.is_finite() {
                            semi
                        } else {
                            hardest_negative
                        };
                        terms.push(penalty(p - n));
                    }
                }
                Mining::All => {
                    for &p in &positives {
                        terms.extend(negatives.iter().map(|&n| penalty(p - n)));
                    }
                    terms.retain(|&t| t > 0.0);
                }
            }
        }
        if any_valid {
            let mean = terms.iter().sum::<f64>() / terms.len().max(1) as f64;
            directions.push(mean);
        }
    }
    directions.iter().sum::<f64>() / directions.len() as f64
}

#[test]
fn triplet_values_match_the_definition() {
    let (subjects, views) = batch_labels();
    let values = random_rows(subjects.len(), 3);
    let memory_subjects = [0, 1, 5, 5];
    let memory_views = [View::Palmar, View::Dorsal, View::Dorsal, View::Palmar];
    let memory_values = random_rows(memory_subjects.len(), 4);
    let mut memory = CrossBatchMemory::new(8);
    let memory_emb = l2_normalize_rows(&tensor(&memory_values)).unwrap();
    memory
        .push(&memory_emb, &memory_subjects, &memory_views)
        .unwrap();

    let rows = normalized_rows(&values);
    let all_rows = [rows.clone(), normalized_rows(&memory_values)].concat();
    let all_subjects = [&subjects[..], &memory_subjects].concat();
    let all_views = [&views[..], &memory_views].concat();
    let batch = Labelled {
        rows: &rows,
        subjects: &subjects,
        views: &views,
    };
    let with_memory = Labelled {
        rows: &all_rows,
        subjects: &all_subjects,
        views: &all_views,
    };
    let emb = l2_normalize_rows(&tensor(&values)).unwrap();
    for mining in [Mining::BatchHard, Mining::SemiHard, Mining::All] {
        for soft_margin in [false, true] {
            let loss = triplet(mining, soft_margin);
            let got = loss.forward(&emb, &subjects, &views).unwrap();
            let want = reference_triplet(&loss, batch, batch);
            let got = got.to_scalar::<f64>().unwrap();
            assert!((got - want).abs() < 1e-9, "{loss:?}: {got} vs {want}");
            let got = loss
                .forward_with_memory(&emb, &subjects, &views, Some(&memory))
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            let want = reference_triplet(&loss, batch, with_memory);
            assert!(
                (got - want).abs() < 1e-9,
                "{loss:?} + memory: {got} vs {want}"
            );
        }
    }
}

#[test]
fn contrastive_value_matches_the_definition() {
    let (subjects, views) = batch_labels();
    let values = random_rows(subjects.len(), 3);
    let rows = normalized_rows(&values);
    let margin = 1.2;
    let mut terms = Vec::new();
    for i in 0..rows.len() {
        for j in i + 1..rows.len() {
            let d = distance(&rows[i], &rows[j]);
            if subjects[i] != subjects[j] {
                terms.push((margin - d).max(0.0).powi(2));
            } else if views[i] != views[j] {
                terms.push(d * d);
            }
        }
    }
    let want = terms.iter().sum::<f64>() / terms.len() as f64;
    let got = ContrastiveLoss { margin }
        .forward(
            &l2_normalize_rows(&tensor(&values)).unwrap(),
            &subjects,
            &views,
        )
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!((got - want).abs() < 1e-9, "{got} vs {want}");
}
