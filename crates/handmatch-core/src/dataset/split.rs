//! Train/validation/test by subject, from a seed, stored as a small JSON file so that
//! training, offline evaluation and the evaluation client use exactly the same subjects.
//! Only subjects with both dorsal and palmar images can be retrieved across views, so only
//! they are split; the others are listed as dropped, with the reason.

use std::collections::BTreeSet;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::hand_info::Dataset;

pub const SPLIT_FORMAT: u32 = 1;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Subset {
    Train,
    Val,
    Test,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fractions {
    pub train: f64,
    pub val: f64,
    pub test: f64,
}

impl Default for Fractions {
    /// The reference study's 68/11/21 %.
    fn default() -> Self {
        Self {
            train: 0.68,
            val: 0.11,
            test: 0.21,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DroppedSubject {
    pub subject: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SubjectSplit {
    pub format: u32,
    pub seed: u64,
    pub fractions: Fractions,
    pub train: Vec<String>,
    pub val: Vec<String>,
    pub test: Vec<String>,
    pub dropped: Vec<DroppedSubject>,
}

#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("split fractions {0:?} must each be in [0, 1] and add up to 1")]
    Fractions(Fractions),
    #[error("no subject has both dorsal and palmar images ({dropped} subjects dropped)")]
    NoEligibleSubjects { dropped: usize },
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a split file: {source}")]
    Json {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: split format {found}, this build reads {SPLIT_FORMAT}")]
    Format {
        path: std::path::PathBuf,
        found: u32,
    },
    #[error("split: subject {subject} is in both {a:?} and {b:?}")]
    Overlap {
        subject: String,
        a: Subset,
        b: Subset,
    },
    #[error("split: {missing} of its {subset:?} subjects are not in the dataset (e.g. {example}); was it made for another dataset?")]
    NotInDataset {
        subset: Subset,
        missing: usize,
        example: String,
    },
}

impl SubjectSplit {
    pub fn new(dataset: &Dataset, fractions: Fractions, seed: u64) -> Result<Self, SplitError> {
        let f = fractions;
        let ok = |x: f64| (0.0..=1.0).contains(&x);
        if !(ok(f.train) && ok(f.val) && ok(f.test))
            || (f.train + f.val + f.test - 1.0).abs() > 1e-6
        {
            return Err(SplitError::Fractions(f));
        }
        let mut eligible = Vec::new();
        let mut dropped = Vec::new();
        for (subject, views) in dataset.subjects() {
            let reason = match (views.dorsal, views.palmar) {
                (0, _) => Some("no dorsal images"),
                (_, 0) => Some("no palmar images"),
                _ => None,
            };
            match reason {
                Some(r) => dropped.push(DroppedSubject {
                    subject: subject.to_string(),
                    reason: r.into(),
                }),
                None => eligible.push(subject.to_string()),
            }
        }
        if eligible.is_empty() {
            return Err(SplitError::NoEligibleSubjects {
                dropped: dropped.len(),
            });
        }
        // Sorted first, so the assignment depends on the subjects and the seed only.
        eligible.sort();
        eligible.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let n = eligible.len();
        let n_test = (n as f64 * f.test).round() as usize;
        let n_val = ((n as f64 * f.val).round() as usize).min(n - n_test);
        let mut test = eligible[..n_test].to_vec();
        let mut val = eligible[n_test..n_test + n_val].to_vec();
        let mut train = eligible[n_test + n_val..].to_vec();
        test.sort();
        val.sort();
        train.sort();
        Ok(Self {
            format: SPLIT_FORMAT,
            seed,
            fractions,
            train,
            val,
            test,
            dropped,
        })
    }

    pub fn subjects(&self, subset: Subset) -> &[String] {
        match subset {
            Subset::Train => &self.train,
            Subset::Val => &self.val,
            Subset::Test => &self.test,
        }
    }

    pub fn subject_set(&self, subset: Subset) -> BTreeSet<String> {
        self.subjects(subset).iter().cloned().collect()
    }

    pub fn save(&self, path: &Path) -> Result<(), SplitError> {
        let io = |source| SplitError::Io {
            path: path.into(),
            source,
        };
        let text = serde_json::to_string_pretty(self).expect("a split serialises") + "\n";
        let tmp = path.with_extension("json.partial");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    pub fn load(path: &Path) -> Result<Self, SplitError> {
        let text = std::fs::read_to_string(path).map_err(|source| SplitError::Io {
            path: path.into(),
            source,
        })?;
        let split: SubjectSplit =
            serde_json::from_str(&text).map_err(|source| SplitError::Json {
                path: path.into(),
                source,
            })?;
        if split.format != SPLIT_FORMAT {
            return Err(SplitError::Format {
                path: path.into(),
                found: split.format,
            });
        }
        split.check_disjoint()?;
        Ok(split)
    }

    pub fn check_disjoint(&self) -> Result<(), SplitError> {
        let subsets = [Subset::Train, Subset::Val, Subset::Test];
        for (i, &a) in subsets.iter().enumerate() {
            let set = self.subject_set(a);
            for &b in &subsets[i + 1..] {
                if let Some(s) = self.subjects(b).iter().find(|s| set.contains(*s)) {
                    return Err(SplitError::Overlap {
                        subject: s.clone(),
                        a,
                        b,
                    });
                }
            }
        }
        Ok(())
    }

    /// Every subject of `subset` must be in `dataset`.
    pub fn check_against(&self, dataset: &Dataset, subset: Subset) -> Result<(), SplitError> {
        let present = dataset.subjects();
        let missing: Vec<&String> = self
            .subjects(subset)
            .iter()
            .filter(|s| !present.contains_key(s.as_str()))
            .collect();
        match missing.first() {
            None => Ok(()),
            Some(example) => Err(SplitError::NotInDataset {
                subset,
                missing: missing.len(),
                example: example.to_string(),
            }),
        }
    }
}
