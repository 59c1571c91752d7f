//! PyTorch's `interpolate(mode="bicubic", align_corners=False)` on a `[C, H, W]` grid,
//! which transformers applies to DINOv2's position embeddings when the input size differs
//! from the checkpoint's. Done once at export time, so the graph has no resize op.

/// The convolution kernel PyTorch uses for bicubic upsampling (A = -0.75).
const A: f64 = -0.75;

fn cubic_near(x: f64) -> f64 {
    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
}

fn cubic_far(x: f64) -> f64 {
    ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
}

/// For each output index: the four source indices (clamped to the border) and weights.
fn taps(in_size: usize, out_size: usize) -> Vec<([usize; 4], [f64; 4])> {
    let scale = in_size as f64 / out_size as f64;
    (0..out_size)
        .map(|i| {
            let real = scale * (i as f64 + 0.5) - 0.5;
            let index = (real.floor() as i64).min(in_size as i64 - 1);
            let t = (real - index as f64).clamp(0.0, 1.0);
            let weights = [
                cubic_far(t + 1.0),
                cubic_near(t),
                cubic_near(1.0 - t),
                cubic_far(2.0 - t),
            ];
            let idx = std::array::from_fn(|j| {
                (index + j as i64 - 1).clamp(0, in_size as i64 - 1) as usize
            });
            (idx, weights)
        })
        .collect()
}

/// Resizes each channel of `src` (`[channels, in_h, in_w]`, row-major) to `out_h x out_w`.
pub fn bicubic(
    src: &[f32],
    channels: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
) -> Vec<f32> {
    assert_eq!(src.len(), channels * in_h * in_w);
    let ty = taps(in_h, out_h);
    let tx = taps(in_w, out_w);
    let mut out = Vec::with_capacity(channels * out_h * out_w);
    for c in 0..channels {
        let plane = &src[c * in_h * in_w..(c + 1) * in_h * in_w];
        for (ys, wy) in &ty {
            for (xs, wx) in &tx {
                let mut acc = 0.0f64;
                for (y, wyv) in ys.iter().zip(wy) {
                    let row = &plane[y * in_w..(y + 1) * in_w];
                    let r: f64 = xs.iter().zip(wx).map(|(&x, w)| row[x] as f64 * w).sum();
                    acc += r * wyv;
                }
                out.push(acc as f32);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_identity() {
        let src: Vec<f32> = (0..2 * 5 * 5).map(|i| (i as f32 * 0.37).sin()).collect();
        let out = bicubic(&src, 2, 5, 5, 5, 5);
        for (a, b) in src.iter().zip(&out) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn constant_stays_constant() {
        let out = bicubic(&[3.0; 16], 1, 4, 4, 7, 7);
        assert!(out.iter().all(|v| (v - 3.0).abs() < 1e-5));
    }

    /// `torch.nn.functional.interpolate(arange(16).reshape(1,1,4,4) ** 1.5, size=(3, 5),
    /// mode="bicubic", align_corners=False)`, torch 2.15: down in one axis, up in the other.
    #[test]
    fn matches_pytorch_on_a_nonuniform_grid() {
        let src: Vec<f32> = (0..16).map(|i| (i as f32).powf(1.5)).collect();
        let expected = [
            0.8157, 1.59971, 3.09345, 5.17796, 6.95199, 14.05138, 16.63829, 20.20658, 24.01033,
            26.99178, 38.78938, 42.25111, 46.95706, 51.85767, 55.64555,
        ];
        let out = bicubic(&src, 1, 4, 4, 3, 5);
        for (o, e) in out.iter().zip(expected) {
            assert!((o - e).abs() < 1e-4, "{o} vs {e}");
        }
    }
}
