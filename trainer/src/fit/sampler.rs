//! P×K batch sampling for the cross-view losses: every batch holds P distinct subjects
//! with K dorsal and K palmar rows each, so every anchor has positives and negatives of
//! the other view.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::fit::view::View;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SamplerError {
    #[error("{rows} training rows with {subjects} subjects and {views} views")]
    LengthMismatch {
        rows: usize,
        subjects: usize,
        views: usize,
    },
    #[error("P and K must be positive (P = {p}, K = {k})")]
    EmptyBatch { p: usize, k: usize },
    #[error("{eligible} subjects have both views, fewer than P = {p}")]
    TooFewSubjects { eligible: usize, p: usize },
}

#[derive(Debug, Clone)]
struct EligibleSubject {
    dorsal: Vec<usize>,
    palmar: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct PkSampler {
    /// In subject-id order, so the batches depend only on the data and the seed.
    subjects: Vec<EligibleSubject>,
    p: usize,
    k: usize,
    rng: ChaCha8Rng,
}

impl PkSampler {
    /// `subjects` and `views` describe the training rows; subjects lacking either view are
    /// skipped, as they could anchor nothing in a cross-view loss.
    pub fn new(
        subjects: &[u32],
        views: &[View],
        p: usize,
        k: usize,
        seed: u64,
    ) -> Result<Self, SamplerError> {
        if subjects.len() != views.len() {
            return Err(SamplerError::LengthMismatch {
                rows: subjects.len().max(views.len()),
                subjects: subjects.len(),
                views: views.len(),
            });
        }
        if p == 0 || k == 0 {
            return Err(SamplerError::EmptyBatch { p, k });
        }
        let mut by_subject: BTreeMap<u32, EligibleSubject> = BTreeMap::new();
        for (row, (&subject, &view)) in subjects.iter().zip(views).enumerate() {
            let entry = by_subject.entry(subject).or_insert(EligibleSubject {
                dorsal: Vec::new(),
                palmar: Vec::new(),
            });
            match view {
                View::Dorsal => entry.dorsal.push(row),
                View::Palmar => entry.palmar.push(row),
            }
        }
        let eligible: Vec<EligibleSubject> = by_subject
            .into_values()
            .filter(|s| !s.dorsal.is_empty() && !s.palmar.is_empty())
            .collect();
        if eligible.len() < p {
            return Err(SamplerError::TooFewSubjects {
                eligible: eligible.len(),
                p,
            });
        }
        Ok(Self {
            subjects: eligible,
            p,
            k,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    pub fn eligible_subjects(&self) -> usize {
        self.subjects.len()
    }

    /// `ceil(eligible subjects / P)`.
    pub fn batches_per_epoch(&self) -> usize {
        self.subjects.len().div_ceil(self.p)
    }

    /// `P · 2K` rows.
    pub fn batch_size(&self) -> usize {
        self.p * 2 * self.k
    }

    /// The next epoch's batches as row indices into the training set. Each batch lists its
    /// subjects one after another, K dorsal rows then K palmar rows each. Every eligible
    /// subject appears once per epoch, except that the last batch is topped up to P with
    /// subjects drawn from the rest. Consecutive calls continue one seeded stream.
    pub fn epoch(&mut self) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.subjects.len()).collect();
        order.shuffle(&mut self.rng);
        let chunks: Vec<Vec<usize>> = order.chunks(self.p).map(<[usize]>::to_vec).collect();
        chunks
            .into_iter()
            .map(|mut chunk| {
                self.top_up(&mut chunk);
                self.batch(&chunk)
            })
            .collect()
    }

    fn top_up(&mut self, chunk: &mut Vec<usize>) {
        if chunk.len() == self.p {
            return;
        }
        let mut others: Vec<usize> = (0..self.subjects.len())
            .filter(|s| !chunk.contains(s))
            .collect();
        others.shuffle(&mut self.rng);
        let missing = self.p - chunk.len();
        chunk.extend_from_slice(&others[..missing]);
    }

    fn batch(&mut self, chunk: &[usize]) -> Vec<usize> {
        let mut rows = Vec::with_capacity(self.batch_size());
        for &subject in chunk {
            let subject = &self.subjects[subject];
            rows.extend(draw(&subject.dorsal, self.k, &mut self.rng));
            rows.extend(draw(&subject.palmar, self.k, &mut self.rng));
        }
        rows
    }
}

/// K rows of one subject and view: without replacement when there are enough; otherwise
/// every row once and the rest drawn with replacement, so no image is left out.
fn draw(rows: &[usize], k: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut shuffled = rows.to_vec();
    shuffled.shuffle(rng);
    shuffled.truncate(k);
    while shuffled.len() < k {
        shuffled.push(rows[rng.random_range(0..rows.len())]);
    }
    shuffled
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Subjects 0..7 with 1–4 dorsal and 1–3 palmar rows; subject 7 has no palmar rows and
    /// subject 8 no dorsal rows, so both must be skipped.
    fn training_set() -> (Vec<u32>, Vec<View>) {
        let mut subjects = Vec::new();
        let mut views = Vec::new();
        for subject in 0..7u32 {
            for _ in 0..1 + subject % 4 {
                subjects.push(subject);
                views.push(View::Dorsal);
            }
            for _ in 0..1 + subject % 3 {
                subjects.push(subject);
                views.push(View::Palmar);
            }
        }
        subjects.extend([7, 7, 8]);
        views.extend([View::Dorsal, View::Dorsal, View::Palmar]);
        (subjects, views)
    }

    #[test]
    fn batches_hold_p_subjects_with_k_rows_of_each_view() {
        let (subjects, views) = training_set();
        let (p, k) = (3, 2);
        let mut sampler = PkSampler::new(&subjects, &views, p, k, 42).unwrap();
        assert_eq!(sampler.eligible_subjects(), 7);
        assert_eq!(sampler.batches_per_epoch(), 3);
        for _ in 0..5 {
            let batches = sampler.epoch();
            assert_eq!(batches.len(), 3);
            let mut seen = HashSet::new();
            for batch in &batches {
                assert_eq!(batch.len(), sampler.batch_size());
                let batch_subjects: Vec<u32> = batch
                    .chunks(2 * k)
                    .map(|group| subjects[group[0]])
                    .collect();
                let distinct: HashSet<_> = batch_subjects.iter().collect();
                assert_eq!(distinct.len(), p, "{batch_subjects:?}");
                for group in batch.chunks(2 * k) {
                    let subject = subjects[group[0]];
                    assert!(subject < 7);
                    assert!(group.iter().all(|&row| subjects[row] == subject));
                    assert!(group[..k].iter().all(|&row| views[row] == View::Dorsal));
                    assert!(group[k..].iter().all(|&row| views[row] == View::Palmar));
                }
                seen.extend(batch_subjects);
            }
            assert_eq!(seen.len(), 7, "every eligible subject appears in an epoch");
        }
    }

    #[test]
    fn subjects_with_enough_rows_are_drawn_without_replacement() {
        let (subjects, views) = training_set();
        let mut sampler = PkSampler::new(&subjects, &views, 7, 2, 1).unwrap();
        for batch in sampler.epoch() {
            for group in batch.chunks(2) {
                let available = subjects
                    .iter()
                    .zip(&views)
                    .filter(|(s, v)| **s == subjects[group[0]] && **v == views[group[0]])
                    .count();
                if available >= 2 {
                    assert_ne!(group[0], group[1]);
                }
            }
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        let (subjects, views) = training_set();
        let epochs = |seed| {
            let mut sampler = PkSampler::new(&subjects, &views, 3, 2, seed).unwrap();
            (sampler.epoch(), sampler.epoch())
        };
        assert_eq!(epochs(9), epochs(9));
        assert_ne!(epochs(9), epochs(10));
    }

    #[test]
    fn rejects_p_above_the_eligible_subjects() {
        let (subjects, views) = training_set();
        assert_eq!(
            PkSampler::new(&subjects, &views, 8, 2, 0).unwrap_err(),
            SamplerError::TooFewSubjects { eligible: 7, p: 8 }
        );
    }
}
