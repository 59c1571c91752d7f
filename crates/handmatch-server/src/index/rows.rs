//! `RowStore`: one aspect's subject rows and the scan over them. In f32 a row is the running
//! sum of the subject's (unit-length) templates, whose direction is their normalised mean;
//! in f16 it is that mean itself, normalised, at half the memory, with the sum's length
//! kept beside it so a template can still be added. A score is `dot(query, row) × scale`.

use half::f16;

use super::kernels::{dot_f16, dot_f32};
use super::top_k::TopK;

/// How the index stores rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IndexPrecision {
    #[default]
    F32,
    F16,
}

impl std::str::FromStr for IndexPrecision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Self::F32),
            "f16" => Ok(Self::F16),
            other => Err(format!("{other:?} is not an index precision: f32 or f16")),
        }
    }
}

impl std::fmt::Display for IndexPrecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
        })
    }
}

/// Rows scanned by one thread before a scan is split across threads.
const PARALLEL_MIN_ROWS: usize = 32_768;
/// Rows scored against every query of a batch before moving on, so each row is read from
/// memory once per batch rather than once per query.
const BLOCK_ROWS: usize = 64;

enum Data {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

pub struct RowStore {
    dim: usize,
    data: Data,
    /// The length of each subject's template sum.
    norms: Vec<f32>,
    /// What turns a row's dot product into a cosine: 1/norm for sums, 1 for means.
    scales: Vec<f32>,
}

impl RowStore {
    pub fn new(precision: IndexPrecision, dim: usize) -> Self {
        let data = match precision {
            IndexPrecision::F32 => Data::F32(Vec::new()),
            IndexPrecision::F16 => Data::F16(Vec::new()),
        };
        Self {
            dim,
            data,
            norms: Vec::new(),
            scales: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.norms.len()
    }

    /// A new empty row at the end.
    pub fn push_empty(&mut self) {
        match &mut self.data {
            Data::F32(v) => v.resize(v.len() + self.dim, 0.0),
            Data::F16(v) => v.resize(v.len() + self.dim, f16::ZERO),
        }
        self.norms.push(0.0);
        self.scales.push(0.0);
    }

    /// Adds a unit-length template to row `i`.
    pub fn add(&mut self, i: usize, embedding: &[f32]) {
        let span = i * self.dim..(i + 1) * self.dim;
        let norm = match &mut self.data {
            Data::F32(v) => {
                let row = &mut v[span];
                row.iter_mut().zip(embedding).for_each(|(s, x)| *s += x);
                dot_f32(row, row).sqrt()
            }
            Data::F16(v) => {
                let row = &mut v[span];
                let old = self.norms[i];
                let sum: Vec<f32> = row
                    .iter()
                    .zip(embedding)
                    .map(|(m, x)| m.to_f32() * old + x)
                    .collect();
                let norm = dot_f32(&sum, &sum).sqrt();
                let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
                row.iter_mut()
                    .zip(&sum)
                    .for_each(|(m, s)| *m = f16::from_f32(s * inv));
                norm
            }
        };
        self.norms[i] = norm;
        self.scales[i] = match (&self.data, norm > 0.0) {
            (_, false) => 0.0,
            (Data::F32(_), true) => 1.0 / norm,
            (Data::F16(_), true) => 1.0,
        };
    }

    /// Removes row `i`, moving the last row into its place.
    pub fn swap_remove(&mut self, i: usize) {
        let last = self.len() - 1;
        let dim = self.dim;
        match &mut self.data {
            Data::F32(v) => swap_remove_row(v, i, last, dim),
            Data::F16(v) => swap_remove_row(v, i, last, dim),
        }
        self.norms.swap_remove(i);
        self.scales.swap_remove(i);
    }

    /// The cosine of `query` with row `i`.
    pub fn score(&self, i: usize, query: &[f32]) -> f32 {
        let span = i * self.dim..(i + 1) * self.dim;
        let d = match &self.data {
            Data::F32(v) => dot_f32(query, &v[span]),
            Data::F16(v) => dot_f16(query, &v[span]),
        };
        d * self.scales[i]
    }

    /// The best `k` rows for each query (scores at least `floor`), over up to `threads`
    /// threads when the store is large enough to be worth splitting.
    pub fn scan(&self, queries: &[&[f32]], k: usize, floor: f32, threads: usize) -> Vec<TopK> {
        let n = self.len();
        let parts = threads.clamp(1, (n / PARALLEL_MIN_ROWS).max(1));
        if parts == 1 {
            return self.scan_rows(queries, 0..n, k, floor);
        }
        let chunk = n.div_ceil(parts);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..parts)
                .map(|p| {
                    let rows = p * chunk..((p + 1) * chunk).min(n);
                    scope.spawn(move || self.scan_rows(queries, rows, k, floor))
                })
                .collect();
            let mut merged: Vec<TopK> = queries.iter().map(|_| TopK::new(k, floor)).collect();
            for handle in handles {
                let part = handle.join().expect("a search thread panicked");
                for (all, some) in merged.iter_mut().zip(part) {
                    all.merge(some);
                }
            }
            merged
        })
    }

    fn scan_rows(
        &self,
        queries: &[&[f32]],
        rows: std::ops::Range<usize>,
        k: usize,
        floor: f32,
    ) -> Vec<TopK> {
        let mut tops: Vec<TopK> = queries.iter().map(|_| TopK::new(k, floor)).collect();
        let mut start = rows.start;
        while start < rows.end {
            let block = start..(start + BLOCK_ROWS).min(rows.end);
            for (query, top) in queries.iter().zip(&mut tops) {
                for i in block.clone() {
                    top.offer(self.score(i, query), i as u32);
                }
            }
            start = block.end;
        }
        tops
    }
}

fn swap_remove_row<T: Copy>(v: &mut Vec<T>, i: usize, last: usize, dim: usize) {
    if i != last {
        let (head, tail) = v.split_at_mut(last * dim);
        head[i * dim..(i + 1) * dim].copy_from_slice(&tail[..dim]);
    }
    v.truncate(last * dim);
}
