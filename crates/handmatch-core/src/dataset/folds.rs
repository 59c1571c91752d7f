//! Subject-disjoint K-fold cross-validation: every eligible subject (both dorsal and palmar
//! images) lands in exactly one fold, deterministically for a seed.

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::hand_info::Dataset;

/// Subjects of `dataset` that have both dorsal and palmar images, sorted.
pub fn eligible_subjects(dataset: &Dataset) -> Vec<String> {
    dataset
        .subjects()
        .into_iter()
        .filter(|(_, v)| v.dorsal > 0 && v.palmar > 0)
        .map(|(s, _)| s.to_string())
        .collect()
}

/// `subjects` shuffled by `seed` and dealt into `k` folds whose sizes differ by at most one.
/// The result depends on the set of subjects and the seed only, not on their order.
pub fn k_folds(subjects: &[String], k: usize, seed: u64) -> Vec<BTreeSet<String>> {
    assert!(k >= 2, "K-fold needs at least two folds");
    let mut shuffled: Vec<String> = subjects.to_vec();
    shuffled.sort();
    shuffled.dedup();
    shuffled.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut folds = vec![BTreeSet::new(); k];
    for (i, s) in shuffled.into_iter().enumerate() {
        folds[i % k].insert(s);
    }
    folds
}

/// A seeded share `fraction` of `subjects` (at least one, and one left over).
pub fn hold_out(
    subjects: &BTreeSet<String>,
    fraction: f64,
    seed: u64,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut list: Vec<&String> = subjects.iter().collect();
    list.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n =
        ((list.len() as f64 * fraction).round() as usize).clamp(1, list.len().saturating_sub(1));
    let held: BTreeSet<String> = list[..n].iter().map(|s| s.to_string()).collect();
    let rest = subjects.difference(&held).cloned().collect();
    (rest, held)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{i:07}")).collect()
    }

    #[test]
    fn folds_are_disjoint_cover_every_subject_and_are_balanced() {
        let subjects = names(23);
        let folds = k_folds(&subjects, 4, 7);
        let all: BTreeSet<String> = folds.iter().flatten().cloned().collect();
        assert_eq!(all.len(), 23);
        assert_eq!(folds.iter().map(|f| f.len()).sum::<usize>(), 23, "disjoint");
        let sizes: Vec<usize> = folds.iter().map(|f| f.len()).collect();
        assert!(
            sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
            "{sizes:?}"
        );
    }

    #[test]
    fn folds_depend_on_the_seed_and_the_subjects_not_their_order() {
        let subjects = names(30);
        let mut reversed = subjects.clone();
        reversed.reverse();
        assert_eq!(k_folds(&subjects, 2, 3), k_folds(&reversed, 2, 3));
        assert_ne!(k_folds(&subjects, 2, 3), k_folds(&subjects, 2, 4));
    }

    #[test]
    fn hold_out_keeps_at_least_one_on_each_side() {
        let subjects: BTreeSet<String> = names(5).into_iter().collect();
        let (rest, held) = hold_out(&subjects, 0.0, 1);
        assert_eq!((rest.len(), held.len()), (4, 1));
        let (rest, held) = hold_out(&subjects, 0.2, 1);
        assert!(rest.is_disjoint(&held) && rest.len() + held.len() == 5);
    }
}
