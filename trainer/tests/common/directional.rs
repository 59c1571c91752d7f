//! Gradient checks by central differences: for each trained tensor, the gradient's product
//! with a random direction must equal the loss's central difference along that direction.
//! The forwards are proven against ONNX Runtime and transformers; this proves that the
//! backward passes, which training follows, are their derivatives.

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Largest relative error allowed between a directional derivative and its central
/// difference: steps of 1e-2 of a tensor's size leave well under 1e-2 of curvature, while
/// a wrong backward (a missing term, a transposed product, a wrong sign) is off by O(1).
pub const DIRECTIONAL_TOLERANCE: f64 = 2e-2;

/// A linear read-out of a network's output and what the check needs of it.
pub struct ReadOut<'a> {
    /// The output value by value (before summing), for the current weights.
    pub terms: &'a dyn Fn() -> Tensor,
    pub rng: ChaCha8Rng,
}

impl ReadOut<'_> {
    /// Checks every tensor of `vars` that has a gradient; returns how many were checked.
    pub fn check(&mut self, vars: &[(String, Var)]) -> usize {
        let terms = (self.terms)();
        // f32 rounding of the loss, which the central difference divides by 2ε.
        let rounding = 10.0 * f64::from(f32::EPSILON) * sum_f64(&terms.abs().unwrap());
        let grads = terms.sum_all().unwrap().backward().unwrap();
        vars.iter()
            .filter(|(name, var)| self.check_one(name, var, &grads, rounding))
            .count()
    }

    fn check_one(&mut self, name: &str, var: &Var, grads: &GradStore, rounding: f64) -> bool {
        let Some(grad) = grads.get(var.as_tensor()) else {
            return false;
        };
        let direction = seeded_normal(var.as_tensor().dims(), &mut self.rng);
        let analytic = sum_f64(&(grad * &direction).unwrap());
        let (numeric, eps) = self.central_difference(var, &direction);
        let allowed = DIRECTIONAL_TOLERANCE * analytic.abs() + rounding / eps;
        eprintln!(
            "{name}: gradient · direction {analytic:.6e}, difference {numeric:.6e} (allowed error {allowed:.1e})"
        );
        assert!(
            (numeric - analytic).abs() <= allowed,
            "{name}: gradient · direction {analytic} but the loss moves {numeric} along it"
        );
        true
    }

    /// `(L(θ + εd) − L(θ − εd)) / 2ε` for the tensor `var`, and ε: a hundredth of its RMS
    /// (at least 1e-3, for the zero biases); `var` is restored.
    fn central_difference(&self, var: &Var, direction: &Tensor) -> (f64, f64) {
        let original = var.as_tensor().copy().unwrap();
        let rms = sum_f64(&original.sqr().unwrap()) / original.elem_count() as f64;
        let eps = (1e-2 * rms.sqrt()).max(1e-3);
        let at = |sign: f64| {
            let step = (direction * (sign * eps)).unwrap();
            var.set(&(&original + step).unwrap()).unwrap();
            sum_f64(&(self.terms)())
        };
        let (up, down) = (at(1.0), at(-1.0));
        var.set(&original).unwrap();
        ((up - down) / (2.0 * eps), eps)
    }
}

pub fn seeded_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

pub fn seeded_normal(dims: &[usize], rng: &mut ChaCha8Rng) -> Tensor {
    let n = dims.iter().product();
    let data: Vec<f32> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
    Tensor::from_vec(data, dims, &Device::Cpu).unwrap()
}

pub fn sum_f64(t: &Tensor) -> f64 {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|&v| f64::from(v))
        .sum()
}
