//! Linear discriminant analysis in closed form: the projection that maximises between-subject
//! over within-subject scatter, for heads that must generalise from ~100 subjects. Classes
//! are subjects with both views pooled; features are standardised; the within-class
//! covariance is shrunk toward a scaled identity (Ledoit–Wolf, or a given amount), whitened,
//! and the top E directions of the whitened class means are kept. No gradient steps.
//!
//! With fewer rows than features (~600 images of 1552-d features) the within-class
//! covariance is diagonalised through the n × n Gram matrix of the centred rows; outside the
//! rows' span the shrunk covariance is the identity scaled by the shrinkage, so its inverse
//! square root is known there in closed form. With more rows (augmented views, larger
//! datasets) the d × d shrunk covariance is whitened by its Cholesky factor instead: a full
//! eigendecomposition of it took minutes.
//!
//! A dorsal and a palmar photo of the same hand differ systematically, and strong shrinkage
//! dilutes the within-class covariance that would suppress those directions; `cross_view`
//! adds the scatter of each subject's dorsal-minus-palmar mean difference to the shrunk
//! covariance, unshrunk, with a weight.

use crate::fit::view::View;
use handmatch_export::head::LinearHead;
use handmatch_export::tensor::Tensor;
use nalgebra::{Cholesky, DMatrix, DVector, SymmetricEigen};

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Shrinkage {
    /// Estimated from the data (Ledoit and Wolf, 2004).
    LedoitWolf,
    /// A fixed amount in [0, 1]: 0 is the plain within-class covariance, 1 the identity.
    Fixed { amount: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LdaOptions {
    /// Directions kept (at most classes − 1).
    pub components: usize,
    pub shrinkage: Shrinkage,
    /// Weight of the cross-view difference scatter `Σ_s δ_s δ_sᵀ / m` (δ_s: subject s's
    /// dorsal mean minus its palmar mean, m subjects with both) in the within-class
    /// covariance; 0 is plain LDA.
    pub cross_view: f64,
}

#[derive(Debug, Clone)]
pub struct LdaFit {
    /// The projection of standardised features `(x − mean) / std`.
    pub projection: LinearHead,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// The shrinkage used (estimated or given).
    pub shrinkage: f64,
    /// Between-class variance along each kept direction, in whitened units, largest first.
    pub eigenvalues: Vec<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum LdaError {
    #[error(
        "LDA needs at least two subjects and one feature; got {classes} subjects, {dim} features"
    )]
    TooFew { classes: usize, dim: usize },
    #[error("LDA: {rows} rows but {labels} labels")]
    Labels { rows: usize, labels: usize },
    #[error("LDA: shrinkage {0} is outside [0, 1]")]
    Shrinkage(f64),
    #[error("LDA: cross-view weight {0} must be finite and at least 0")]
    CrossView(f64),
}

impl LdaFit {
    /// The head on raw features: the standardisation folded into the projection.
    pub fn head(&self) -> LinearHead {
        self.projection
            .clone()
            .with_input_standardisation(&self.mean, &self.std)
    }
}

/// Fits the projection on `rows` (each a feature vector of the same length) labelled by
/// `labels` (subject indices) and `views`.
pub fn fit_lda(
    rows: &[&[f32]],
    labels: &[u32],
    views: &[View],
    opts: &LdaOptions,
) -> Result<LdaFit, LdaError> {
    let (n, d) = (rows.len(), rows.first().map_or(0, |r| r.len()));
    if labels.len() != n || views.len() != n {
        return Err(LdaError::Labels {
            rows: n,
            labels: labels.len(),
        });
    }
    let classes = class_index(labels);
    if classes.len() < 2 || d == 0 {
        return Err(LdaError::TooFew {
            classes: classes.len(),
            dim: d,
        });
    }
    let (mean, std) = column_statistics(rows);
    let z = DMatrix::from_fn(n, d, |i, k| (rows[i][k] as f64 - mean[k]) / std[k]);
    let (means, counts) = class_means(&z, labels, &classes);
    if !(opts.cross_view.is_finite() && opts.cross_view >= 0.0) {
        return Err(LdaError::CrossView(opts.cross_view));
    }
    let within = within_centred(&z, labels, &classes, &means);
    let alpha = match opts.shrinkage {
        Shrinkage::LedoitWolf => ledoit_wolf(&within),
        Shrinkage::Fixed { amount } if (0.0..=1.0).contains(&amount) => amount,
        Shrinkage::Fixed { amount } => return Err(LdaError::Shrinkage(amount)),
    };
    let cross_view = cross_view_rows(&view_differences(&z, labels, views), opts.cross_view);
    let whitening = Whitening::new(&within, alpha, &cross_view);
    // Class means weighted by their share of the rows, in whitened coordinates.
    let weighted = DMatrix::from_fn(means.nrows(), d, |c, k| {
        means[(c, k)] * (counts[c] as f64 / n as f64).sqrt()
    });
    let whitened_means = whitening.apply_right(&weighted);
    let svd = whitened_means.svd(false, true);
    let v_t = svd.v_t.expect("asked for V");
    let mut order: Vec<usize> = (0..svd.singular_values.len()).collect();
    order.sort_by(|&a, &b| svd.singular_values[b].total_cmp(&svd.singular_values[a]));
    let e = opts
        .components
        .min(classes.len() - 1)
        .min(order.len())
        .max(1);
    let directions = DMatrix::from_fn(d, e, |k, j| v_t[(order[j], k)]);
    // Back from whitened to standardised coordinates: A = S^(-1/2) Q.
    let projection = whitening.apply_left(&directions);
    let weight = Tensor::new(
        vec![e, d],
        (0..e)
            .flat_map(|j| (0..d).map(move |k| (j, k)))
            .map(|(j, k)| projection[(k, j)] as f32)
            .collect(),
    );
    Ok(LdaFit {
        projection: LinearHead::new(weight, Tensor::new(vec![e], vec![0.0; e])),
        mean: mean.iter().map(|&m| m as f32).collect(),
        std: std.iter().map(|&s| s as f32).collect(),
        shrinkage: alpha,
        eigenvalues: order[..e]
            .iter()
            .map(|&j| svd.singular_values[j].powi(2))
            .collect(),
    })
}

/// Distinct labels in first-seen order → row of the class-means matrix.
fn class_index(labels: &[u32]) -> std::collections::BTreeMap<u32, usize> {
    let mut index = std::collections::BTreeMap::new();
    for &l in labels {
        let next = index.len();
        index.entry(l).or_insert(next);
    }
    index
}

/// Per-feature mean and std (population); a constant feature keeps std 1.
fn column_statistics(rows: &[&[f32]]) -> (Vec<f64>, Vec<f64>) {
    let (n, d) = (rows.len() as f64, rows[0].len());
    let mut sum = vec![0.0f64; d];
    let mut sq = vec![0.0f64; d];
    for r in rows {
        for (k, &x) in r.iter().enumerate() {
            sum[k] += x as f64;
            sq[k] += x as f64 * x as f64;
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| {
            let var = (q / n - m * m).max(0.0);
            if var > 1e-12 {
                var.sqrt()
            } else {
                1.0
            }
        })
        .collect();
    (mean, std)
}

fn class_means(
    z: &DMatrix<f64>,
    labels: &[u32],
    classes: &std::collections::BTreeMap<u32, usize>,
) -> (DMatrix<f64>, Vec<usize>) {
    let mut means = DMatrix::zeros(classes.len(), z.ncols());
    let mut counts = vec![0usize; classes.len()];
    for (i, l) in labels.iter().enumerate() {
        let c = classes[l];
        counts[c] += 1;
        let mut row = means.row_mut(c);
        row += z.row(i);
    }
    for (c, &n) in counts.iter().enumerate() {
        means.row_mut(c).scale_mut(1.0 / n as f64);
    }
    (means, counts)
}

/// Each row minus its class mean.
fn within_centred(
    z: &DMatrix<f64>,
    labels: &[u32],
    classes: &std::collections::BTreeMap<u32, usize>,
    means: &DMatrix<f64>,
) -> DMatrix<f64> {
    let mut w = z.clone();
    for (i, l) in labels.iter().enumerate() {
        let mut row = w.row_mut(i);
        row -= means.row(classes[l]);
    }
    w
}

/// Per subject with both views: its dorsal rows' mean minus its palmar rows' mean.
fn view_differences(z: &DMatrix<f64>, labels: &[u32], views: &[View]) -> DMatrix<f64> {
    let mut sums: std::collections::BTreeMap<u32, [(DVector<f64>, usize); 2]> = Default::default();
    for (i, (&l, &v)) in labels.iter().zip(views).enumerate() {
        let entry = sums.entry(l).or_insert_with(|| {
            let zero = || (DVector::zeros(z.ncols()), 0);
            [zero(), zero()]
        });
        let side = &mut entry[usize::from(v == View::Palmar)];
        side.0 += z.row(i).transpose();
        side.1 += 1;
    }
    let diffs: Vec<DVector<f64>> = sums
        .values()
        .filter(|[d, p]| d.1 > 0 && p.1 > 0)
        .map(|[d, p]| &d.0 / d.1 as f64 - &p.0 / p.1 as f64)
        .collect();
    DMatrix::from_fn(diffs.len(), z.ncols(), |s, k| diffs[s][k])
}

/// Rows `E` with `EᵀE = weight · DᵀD / m` (m: the rows of D): the cross-view scatter, added
/// to the shrunk covariance unshrunk, so that strong shrinkage does not dilute it.
fn cross_view_rows(diffs: &DMatrix<f64>, weight: f64) -> DMatrix<f64> {
    let m = diffs.nrows();
    if m == 0 || weight == 0.0 {
        return DMatrix::zeros(0, diffs.ncols());
    }
    diffs * (weight / m as f64).sqrt()
}

/// The Ledoit–Wolf shrinkage of the covariance `WᵀW / n` of centred rows `W` toward
/// `tr/d · I` (scikit-learn's `ledoit_wolf_shrinkage` with `assume_centered`).
pub fn ledoit_wolf(w: &DMatrix<f64>) -> f64 {
    let (n, d) = (w.nrows() as f64, w.ncols() as f64);
    let row_sq: Vec<f64> = (0..w.nrows()).map(|i| w.row(i).norm_squared()).collect();
    let trace = row_sq.iter().sum::<f64>() / n;
    let mu = trace / d;
    // ‖WᵀW‖²_F = ‖WWᵀ‖²_F: whichever of the two is smaller.
    let gram = if w.nrows() < w.ncols() {
        w * w.transpose()
    } else {
        w.transpose() * w
    };
    let delta_ = gram.norm_squared() / (n * n);
    let beta_ = row_sq.iter().map(|s| s * s).sum::<f64>();
    let beta = (beta_ / n - delta_) / (d * n);
    let delta = (delta_ - 2.0 * mu * trace + d * mu * mu) / d;
    if delta <= 0.0 {
        return 0.0;
    }
    (beta.min(delta) / delta).clamp(0.0, 1.0)
}

/// A whitening `W` of the shrunk within-class covariance plus the cross-view rows' scatter,
/// `S = (1 − α) WᵀW / n + α μ I + EᵀE` with `μ = tr(WᵀW / n) / d` (`Wᵀ S W = I`; LDA's
/// directions do not depend on which one).
enum Whitening {
    /// Fewer rows than features: `S^(-1/2)`, kept as its eigenvectors in the rows' span
    /// (`basis`, d × r), their factors, and the factor outside the span.
    Spectral {
        basis: DMatrix<f64>,
        inside: DVector<f64>,
        outside: f64,
    },
    /// Otherwise `L^(-T)` for the Cholesky factor `S = L Lᵀ`: a d × d factorisation is
    /// several times cheaper than a d × d eigendecomposition.
    Cholesky { l: DMatrix<f64> },
}

impl Whitening {
    fn new(w: &DMatrix<f64>, alpha: f64, extra: &DMatrix<f64>) -> Self {
        let (n, d) = (w.nrows() as f64, w.ncols());
        let floor = shrinkage_floor(alpha, w.norm_squared() / n / d as f64);
        // S − floor·I = RᵀR for these rows R.
        let rows = DMatrix::from_fn(w.nrows() + extra.nrows(), d, |i, k| {
            if i < w.nrows() {
                w[(i, k)] * ((1.0 - alpha) / n).sqrt()
            } else {
                extra[(i - w.nrows(), k)]
            }
        });
        if rows.nrows() < d {
            let (basis, spectrum) = gram_spectrum(&rows);
            let inside = spectrum.map(|l| (l + floor).powf(-0.5));
            return Whitening::Spectral {
                basis,
                inside,
                outside: floor.powf(-0.5),
            };
        }
        let shrunk = rows.transpose() * &rows + DMatrix::identity(d, d) * floor;
        let l = Cholesky::new(shrunk)
            .expect("a scatter plus a positive multiple of the identity is positive definite")
            .l();
        Whitening::Cholesky { l }
    }

    /// `m · W` for rows `m` (k × d).
    fn apply_right(&self, m: &DMatrix<f64>) -> DMatrix<f64> {
        match self {
            Whitening::Spectral {
                basis,
                inside,
                outside,
            } => {
                let mu = m * basis;
                let scaled = DMatrix::from_fn(mu.nrows(), mu.ncols(), |i, j| {
                    mu[(i, j)] * (inside[j] - outside)
                });
                m * *outside + scaled * basis.transpose()
            }
            // m L^(-T) = (L^(-1) mᵀ)ᵀ
            Whitening::Cholesky { l } => l
                .solve_lower_triangular(&m.transpose())
                .expect("L has a positive diagonal")
                .transpose(),
        }
    }

    /// `W · a` for columns `a` (d × k).
    fn apply_left(&self, a: &DMatrix<f64>) -> DMatrix<f64> {
        match self {
            Whitening::Spectral { .. } => self.apply_right(&a.transpose()).transpose(),
            Whitening::Cholesky { l } => l
                .transpose()
                .solve_upper_triangular(a)
                .expect("Lᵀ has a positive diagonal"),
        }
    }
}

/// `α μ`, the shrinkage's share of the identity; without shrinkage the covariance may be
/// singular, so a tiny floor keeps it invertible.
fn shrinkage_floor(alpha: f64, mu: f64) -> f64 {
    (alpha * mu).max(1e-12 * mu).max(1e-300)
}

/// Eigenvectors (d × r) and eigenvalues of `WᵀW` with nonzero spectrum, through the n × n
/// Gram matrix (for `W` with fewer rows than columns).
fn gram_spectrum(w: &DMatrix<f64>) -> (DMatrix<f64>, DVector<f64>) {
    let eig = SymmetricEigen::new(w * w.transpose());
    let keep: Vec<usize> = (0..eig.eigenvalues.len())
        .filter(|&j| eig.eigenvalues[j] > 1e-10 * eig.eigenvalues.max().max(1e-300))
        .collect();
    // u_j = Wᵀ v_j / sqrt(λ_j): unit eigenvectors of WᵀW.
    let v = DMatrix::from_fn(w.nrows(), keep.len(), |i, j| eig.eigenvectors[(i, keep[j])]);
    let mut u = w.transpose() * v;
    for (j, &k) in keep.iter().enumerate() {
        u.column_mut(j).scale_mut(1.0 / eig.eigenvalues[k].sqrt());
    }
    let values = DVector::from_iterator(keep.len(), keep.iter().map(|&k| eig.eigenvalues[k]));
    (u, values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    /// Two classes that differ along `delta`, with anisotropic noise: the discriminant
    /// direction is `Σ⁻¹ δ`, not `δ`.
    fn two_classes(n: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<u32>, Vec<f64>) {
        let sigma = [1.0, 3.0, 0.5, 1.0, 2.0];
        let delta = [1.0, 1.0, 0.0, 0.5, 0.0];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0, 1.0).unwrap();
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let c = (i % 2) as u32;
            let row: Vec<f32> = (0..5)
                .map(|k| (c as f64 * delta[k] + sigma[k] * normal.sample(&mut rng) + 10.0) as f32)
                .collect();
            rows.push(row);
            labels.push(c);
        }
        let want: Vec<f64> = (0..5).map(|k| delta[k] / (sigma[k] * sigma[k])).collect();
        (rows, labels, want)
    }

    fn cosine(a: &[f64], b: &[f64]) -> f64 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        dot / (a.iter().map(|x| x * x).sum::<f64>().sqrt()
            * b.iter().map(|x| x * x).sum::<f64>().sqrt())
    }

    #[test]
    fn finds_the_known_discriminant_direction() {
        let (rows, labels, want) = two_classes(20_000, 1);
        let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
        let views = vec![View::Dorsal; refs.len()];
        let fit = fit_lda(
            &refs,
            &labels,
            &views,
            &LdaOptions {
                components: 4,
                shrinkage: Shrinkage::Fixed { amount: 0.0 },
                cross_view: 0.0,
            },
        )
        .unwrap();
        let head = fit.head();
        assert_eq!(head.embedding_dim(), 1, "two classes give one direction");
        let got: Vec<f64> = head.weight.data.iter().map(|&w| w as f64).collect();
        let c = cosine(&got, &want).abs();
        assert!(c > 0.995, "cosine to Σ⁻¹δ is {c}: {got:?} vs {want:?}");
    }

    /// Subjects spread equally along e0 and e1; e0 is noisy, and each hand's two views also
    /// differ along e1 by a subject-specific amount: under strong shrinkage e1 separates the
    /// training subjects' pooled means best, yet it does not carry across views. The
    /// cross-view term must turn the first direction from e1 toward e0.
    #[test]
    fn the_cross_view_term_suppresses_what_differs_between_views() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let normal = Normal::new(0.0, 1.0).unwrap();
        let (mut rows, mut labels, mut views) = (Vec::new(), Vec::new(), Vec::new());
        for s in 0..60u32 {
            let base = [normal.sample(&mut rng), normal.sample(&mut rng)];
            let delta = 3.0 * normal.sample(&mut rng);
            for (view, shift) in [(View::Dorsal, delta), (View::Palmar, 0.0)] {
                for _ in 0..4 {
                    let mut noise = |sd: f64| sd * normal.sample(&mut rng);
                    rows.push(vec![
                        (base[0] + noise(1.5)) as f32,
                        (base[1] + shift + noise(0.1)) as f32,
                        noise(0.1) as f32,
                    ]);
                    labels.push(s);
                    views.push(view);
                }
            }
        }
        let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
        let first_direction = |cross_view: f64| {
            let opts = LdaOptions {
                components: 1,
                shrinkage: Shrinkage::Fixed { amount: 0.95 },
                cross_view,
            };
            // In standardised units, where shrinkage acts.
            let fit = fit_lda(&refs, &labels, &views, &opts).unwrap();
            let w = fit.projection.weight.data;
            (w[0].abs() as f64, w[1].abs() as f64)
        };
        let (e0_plain, e1_plain) = first_direction(0.0);
        let (e0_cross, e1_cross) = first_direction(20.0);
        assert!(
            e1_plain > e0_plain,
            "plain LDA under shrinkage takes e1 first: {e0_plain} vs {e1_plain}"
        );
        assert!(
            e0_cross > 5.0 * e1_cross,
            "with the cross-view term e0 leads: {e0_cross} vs {e1_cross}"
        );
    }

    #[test]
    fn the_gram_spectrum_reconstructs_the_covariance() {
        let (rows, _, _) = two_classes(4, 2);
        let w = DMatrix::from_fn(4, 5, |i, k| rows[i][k] as f64 - 10.0);
        let (basis, values) = gram_spectrum(&w);
        let reconstructed = &basis * DMatrix::from_diagonal(&values) * basis.transpose();
        let direct = w.transpose() * &w;
        assert!((reconstructed - direct).norm() < 1e-9);
    }

    /// Both whitenings satisfy `Wᵀ S W = I` for the shrunk covariance (plus the extra rows'
    /// scatter) they were made from.
    #[test]
    fn both_whitenings_whiten_the_shrunk_covariance() {
        let (rows, _, _) = two_classes(12, 4);
        let extra = DMatrix::from_fn(1, 5, |_, k| 0.5 * k as f64);
        for n in [3, 12] {
            let w = DMatrix::from_fn(n, 5, |i, k| rows[i][k] as f64 - 10.0);
            let alpha = 0.3;
            let cov = (w.transpose() * &w) / n as f64;
            let mu = cov.trace() / 5.0;
            let shrunk = cov * (1.0 - alpha)
                + DMatrix::identity(5, 5) * (alpha * mu)
                + extra.transpose() * &extra;
            let whitening = Whitening::new(&w, alpha, &extra);
            assert_eq!(
                matches!(whitening, Whitening::Spectral { .. }),
                n + 1 < 5,
                "the Gram path only for fewer rows than features"
            );
            let white = whitening.apply_left(&DMatrix::identity(5, 5));
            let identity = white.transpose() * shrunk * &white;
            assert!(
                (identity - DMatrix::identity(5, 5)).norm() < 1e-9,
                "n = {n}"
            );
            let right = whitening.apply_right(&DMatrix::identity(5, 5));
            assert!(
                (right - &white).norm() < 1e-9,
                "m·W and W·a agree (n = {n})"
            );
        }
    }

    #[test]
    fn ledoit_wolf_shrinks_little_with_plenty_of_rows_and_much_with_few() {
        let (rows, _, _) = two_classes(20_000, 3);
        let centred = |n: usize| {
            let sub: Vec<&Vec<f32>> = rows.iter().take(n).collect();
            let mean: Vec<f64> = (0..5)
                .map(|k| sub.iter().map(|r| r[k] as f64).sum::<f64>() / n as f64)
                .collect();
            DMatrix::from_fn(n, 5, |i, k| sub[i][k] as f64 - mean[k])
        };
        let plenty = ledoit_wolf(&centred(20_000));
        let few = ledoit_wolf(&centred(6));
        assert!((0.0..0.01).contains(&plenty), "{plenty}");
        assert!(few > plenty && few <= 1.0, "{few} vs {plenty}");
    }
}
