//! The one source of Gaussian noise of the synthetic hands.

use rand::Rng;

/// Roughly N(0, 1) from plain arithmetic: `rand_distr`'s normal goes through the platform's
/// `ln`/`exp`, whose last bits may differ between systems and would break byte-identical output.
pub(super) fn standard_normal(rng: &mut impl Rng) -> f32 {
    let sum: f32 = (0..4).map(|_| rng.random::<f32>()).sum();
    (sum - 2.0) * 1.732_050_8
}
