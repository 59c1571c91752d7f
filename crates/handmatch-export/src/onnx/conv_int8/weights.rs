//! Symmetric per-output-channel int8 weights, shared by the QDQ rewrite and the bias
//! correction that must predict its rounding exactly.

/// `w`, laid out `[O, ...]`, → (int8 `w_q`, per-channel scales `[O]`): `w ≈ w_q · scale[o]`,
/// `|w_q| ≤ weight_max`.
pub fn quantise_per_channel(w: &[f32], out_channels: usize, weight_max: i8) -> (Vec<i8>, Vec<f32>) {
    assert!(weight_max >= 1, "weight_max must be positive");
    assert_eq!(w.len() % out_channels, 0, "whole channels");
    let per = w.len() / out_channels;
    let scales: Vec<f32> = w
        .chunks_exact(per)
        .map(|c| symmetric_scale(c.iter().fold(0.0f32, |m, v| m.max(v.abs())), weight_max))
        .collect();
    let q = w
        .iter()
        .enumerate()
        .map(|(i, v)| quantise_value(*v, scales[i / per], weight_max))
        .collect();
    (q, scales)
}

/// The step that maps a largest magnitude `amax` to `weight_max` (1 for an all-zero block).
pub fn symmetric_scale(amax: f32, weight_max: i8) -> f32 {
    if amax > 0.0 {
        amax / weight_max as f32
    } else {
        1.0
    }
}

/// `v` in steps of `scale`, rounded to the nearest and clamped to ±`weight_max`.
pub fn quantise_value(v: f32, scale: f32, weight_max: i8) -> i8 {
    let qmax = weight_max as f32;
    (v / scale).round().clamp(-qmax, qmax) as i8
}

/// What `quantise_per_channel` turns `w` into, back in float: `w_q · scale[o]`.
pub fn rounded_per_channel(w: &[f32], out_channels: usize, weight_max: i8) -> Vec<f32> {
    let (q, scales) = quantise_per_channel(w, out_channels, weight_max);
    let per = w.len() / out_channels;
    q.iter()
        .enumerate()
        .map(|(i, &v)| v as f32 * scales[i / per])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_channel_reaches_the_bound_and_rounds_to_within_half_a_step() {
        let w = [0.5, -1.0, 0.25, 0.02, 0.0, -0.01];
        let (q, scales) = quantise_per_channel(&w, 2, 127);
        assert_eq!(q[1], -127);
        assert_eq!(q[3], 127);
        let back = rounded_per_channel(&w, 2, 127);
        for (i, (a, b)) in w.iter().zip(&back).enumerate() {
            assert!(
                (a - b).abs() <= scales[i / 3] / 2.0 + 1e-9,
                "{i}: {a} vs {b}"
            );
        }
        let (zero_q, zero_scales) = quantise_per_channel(&[0.0; 4], 1, 63);
        assert_eq!((zero_q, zero_scales), (vec![0; 4], vec![1.0]));
    }
}
