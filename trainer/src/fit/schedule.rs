//! Learning rate per optimiser step: optional linear warm-up, then cosine decay.

use std::f64::consts::PI;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineSchedule {
    /// The peak rate, reached when warm-up ends.
    pub lr0: f64,
    /// The rate at `total_steps` and after.
    pub lr_min: f64,
    /// Steps of the whole run, warm-up included.
    pub total_steps: usize,
    /// Steps over which the rate ramps linearly up to `lr0`; 0 for none.
    pub warmup_steps: usize,
}

impl CosineSchedule {
    /// The rate for the 0-based `step`. Warm-up step `s` gets `lr0·(s+1)/warmup`, so the
    /// first step already moves the weights; from `warmup_steps` the rate follows
    /// `lr_min + (lr0 − lr_min)·(1 + cos(π·t))/2` with `t` going from 0 to 1 at
    /// `total_steps` (as PyTorch's `CosineAnnealingLR` with `T_max` = the decay steps).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr0 * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps);
        if decay_steps == 0 {
            return self.lr_min;
        }
        let t = ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        self.lr_min + (self.lr0 - self.lr_min) * 0.5 * (1.0 + (PI * t).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn cosine_runs_from_lr0_to_lr_min() {
        let s = CosineSchedule {
            lr0: 1e-3,
            lr_min: 1e-5,
            total_steps: 100,
            warmup_steps: 0,
        };
        assert!(close(s.lr(0), 1e-3));
        assert!(close(s.lr(50), (1e-3 + 1e-5) / 2.0));
        assert!(close(s.lr(100), 1e-5));
        assert!(close(s.lr(1000), 1e-5));
        assert!((1..=100).all(|step| s.lr(step) <= s.lr(step - 1)));
    }

    #[test]
    fn warmup_ramps_linearly_to_lr0_then_decays() {
        let s = CosineSchedule {
            lr0: 2e-3,
            lr_min: 0.0,
            total_steps: 110,
            warmup_steps: 10,
        };
        assert!(close(s.lr(0), 2e-4));
        assert!(close(s.lr(4), 1e-3));
        assert!(close(s.lr(9), 2e-3));
        assert!(close(s.lr(10), 2e-3));
        assert!(close(s.lr(60), 1e-3));
        assert!(close(s.lr(110), 0.0));
    }
}
