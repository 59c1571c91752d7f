//! The cached features a head is fitted on: which rows train and validate, their labels,
//! the standardisation, and the head's function applied to cached rows.

use std::collections::{BTreeMap, BTreeSet};

use handmatch_core::metrics::EmbeddedImage;
use handmatch_export::head::Head;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::config::FitConfig;
use super::error::FitError;
use crate::extract::FeatureCache;
use crate::fit::view::View;

/// The head's embeddings of cached evaluation features (eval mode, CPU, f32): the same
/// function the exported graph computes.
pub fn embed_cached(head: &Head, cache: &FeatureCache, rows: &[usize]) -> Vec<EmbeddedImage> {
    let feats: Vec<f32> = rows
        .iter()
        .flat_map(|&r| cache.eval.row(r).to_vec())
        .collect();
    let e = head.forward(&feats);
    let dim = head.embedding_dim();
    rows.iter()
        .zip(e.chunks(dim))
        .map(|(&r, emb)| EmbeddedImage {
            subject: cache.images[r].subject.clone(),
            aspect: cache.images[r].aspect,
            accessories: cache.images[r].accessories,
            embedding: emb.to_vec(),
        })
        .collect()
}

/// The raw backbone features, L2-normalised: the baseline a trained head must beat.
pub fn raw_features(cache: &FeatureCache, rows: &[usize]) -> Vec<EmbeddedImage> {
    rows.iter()
        .map(|&r| {
            let mut e = cache.eval.row(r).to_vec();
            handmatch_core::template::l2_normalize(&mut e);
            EmbeddedImage {
                subject: cache.images[r].subject.clone(),
                aspect: cache.images[r].aspect,
                accessories: cache.images[r].accessories,
                embedding: e,
            }
        })
        .collect()
}

pub fn rows_of(cache: &FeatureCache, subjects: &BTreeSet<String>) -> Vec<usize> {
    (0..cache.images.len())
        .filter(|&i| subjects.contains(&cache.images[i].subject))
        .collect()
}

/// Per-feature mean and std over the training rows' evaluation features; a constant
/// feature keeps std 1 so it is only centred.
pub fn feature_statistics(cache: &FeatureCache, rows: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let d = cache.eval.ncols();
    let n = rows.len().max(1) as f64;
    let mut sum = vec![0.0f64; d];
    let mut sq = vec![0.0f64; d];
    for &r in rows {
        for (k, &x) in cache.eval.row(r).iter().enumerate() {
            sum[k] += x as f64;
            sq[k] += (x as f64) * (x as f64);
        }
    }
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let std = sum
        .iter()
        .zip(&sq)
        .map(|(s, q)| {
            let var = (q / n - (s / n) * (s / n)).max(0.0);
            if var > 1e-12 {
                var.sqrt() as f32
            } else {
                1.0
            }
        })
        .collect();
    (mean, std)
}

/// The cached rows a head trains and validates on, with the training rows' labels and the
/// standardisation (identity unless `--standardize`).
pub struct TrainingData<'c> {
    pub cache: &'c FeatureCache,
    pub train_rows: Vec<usize>,
    pub val_rows: Vec<usize>,
    /// Per training row: the subject's index and the view.
    pub subjects: Vec<u32>,
    pub views: Vec<View>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub standardize: bool,
}

impl<'c> TrainingData<'c> {
    pub fn new(
        cache: &'c FeatureCache,
        train: &BTreeSet<String>,
        val: &BTreeSet<String>,
        cfg: &FitConfig,
    ) -> Result<Self, FitError> {
        let train_rows = rows_of(cache, train);
        let val_rows = rows_of(cache, val);
        if train_rows.is_empty() || val_rows.is_empty() {
            return Err(FitError::Data(format!(
                "{} training and {} validation images: both must be non-empty",
                train_rows.len(),
                val_rows.len()
            )));
        }
        let ids: BTreeMap<&str, u32> = train
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i as u32))
            .collect();
        let subjects = train_rows
            .iter()
            .map(|&r| ids[cache.images[r].subject.as_str()])
            .collect();
        let views = train_rows
            .iter()
            .map(|&r| View::from(cache.images[r].aspect))
            .collect();
        let d = cache.eval.ncols();
        let (mean, std) = if cfg.standardize {
            feature_statistics(cache, &train_rows)
        } else {
            (vec![0.0; d], vec![1.0; d])
        };
        Ok(Self {
            cache,
            train_rows,
            val_rows,
            subjects,
            views,
            mean,
            std,
            standardize: cfg.standardize,
        })
    }

    pub fn dim(&self) -> usize {
        self.cache.eval.ncols()
    }

    /// A batch's input features: one augmented view drawn per row (the evaluation view when
    /// the cache has none), standardised.
    pub fn batch_features(&self, batch: &[usize], rng: &mut ChaCha8Rng) -> Vec<f32> {
        let d = self.dim();
        let n_views = self.cache.views.shape()[1];
        let mut feats: Vec<f32> = Vec::with_capacity(batch.len() * d);
        for &i in batch {
            let row = self.train_rows[i];
            if n_views > 0 {
                let v = rng.random_range(0..n_views);
                feats.extend(self.cache.views.slice(ndarray::s![row, v, ..]).iter());
            } else {
                feats.extend(self.cache.eval.row(row).iter());
            }
        }
        if self.standardize {
            for row in feats.chunks_mut(d) {
                for ((x, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                    *x = (*x - m) / s;
                }
            }
        }
        feats
    }

    /// Standardise with these statistics from now on (a head started from LDA uses LDA's).
    pub fn use_standardisation(&mut self, mean: Vec<f32>, std: Vec<f32>) {
        self.mean = mean;
        self.std = std;
        self.standardize = true;
    }

    /// The exported head: the standardisation folded into its first Linear.
    pub fn exported(&self, head: Head) -> Head {
        if self.standardize {
            head.with_input_standardisation(&self.mean, &self.std)
        } else {
            head
        }
    }
}
