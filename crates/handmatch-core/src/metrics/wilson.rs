//! The Wilson score interval: unlike the normal approximation it stays inside [0, 1] and
//! is sensible at 0 or n successes, which is common for recall on small galleries.

/// Two-sided 95% normal quantile.
pub const Z_95: f64 = 1.959964;

/// The 95% Wilson score interval for `successes` out of `n`; `(0, 1)` when `n` is 0, as
/// nothing is known then.
pub fn wilson_interval(successes: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n = n as f64;
    let p = successes as f64 / n;
    let z2 = Z_95 * Z_95;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half_width = Z_95 / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    (
        (centre - half_width).max(0.0),
        (centre + half_width).min(1.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-4
    }

    #[test]
    fn matches_published_values() {
        let (lo, hi) = wilson_interval(8, 10);
        assert!(close(lo, 0.4902) && close(hi, 0.9433), "{lo} {hi}");
        // Newcombe (1998), 81/263: 0.2553 – 0.3662.
        let (lo, hi) = wilson_interval(81, 263);
        assert!(close(lo, 0.2553) && close(hi, 0.3662), "{lo} {hi}");
    }

    #[test]
    fn extremes_stay_inside_unit_interval() {
        let (lo, hi) = wilson_interval(0, 10);
        assert_eq!(lo, 0.0);
        assert!(close(hi, 0.2775), "{hi}");
        let (lo, hi) = wilson_interval(10, 10);
        assert!(close(lo, 0.7225) && close(hi, 1.0), "{lo} {hi}");
        assert_eq!(wilson_interval(0, 0), (0.0, 1.0));
    }
}
