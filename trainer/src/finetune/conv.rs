//! Convolutions as matrix products and shifted multiply-adds (and max pooling as shifted
//! maxima), so that candle's CPU backend runs them (and their gradients) as a few large
//! operations. candle's own `conv2d` runs a
//! depthwise convolution as one tiny convolution per channel and its backward pass through
//! `conv_transpose2d`; `benches/depthwise.rs` measures the difference.

use candle_core::{Result, Tensor, D};

/// One ONNX `Conv` node's geometry; the weight is `[out, in / group, kh, kw]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    pub group: usize,
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    /// ONNX order: top, left, bottom, right.
    pub pads: [usize; 4],
}

impl ConvSpec {
    /// The output's spatial size for an input of `(h, w)`.
    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        let [t, l, b, r] = self.pads;
        (
            (h + t + b - self.kernel.0) / self.stride.0 + 1,
            (w + l + r - self.kernel.1) / self.stride.1 + 1,
        )
    }

    fn is_pointwise(&self) -> bool {
        self.kernel == (1, 1) && self.stride == (1, 1) && self.pads == [0; 4]
    }
}

/// `x [N, C, H, W]` convolved with `weight`, plus `bias [O]` when given.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    spec: &ConvSpec,
) -> Result<Tensor> {
    let (_, c, _, _) = x.dims4()?;
    let out_channels = weight.dim(0)?;
    let y = if spec.is_pointwise() && spec.group == 1 {
        pointwise(x, weight)?
    } else if spec.group == c && out_channels == c {
        depthwise(x, weight, spec)?
    } else if spec.group == 1 && candles_backward_holds(x, spec)? {
        let [t, l, b, r] = spec.pads;
        let padded = x.pad_with_zeros(2, t, b)?.pad_with_zeros(3, l, r)?;
        padded.conv2d(weight, 0, spec.stride.0, 1, 1)?
    } else if spec.group == 1 {
        dense(x, weight, spec)?
    } else {
        candle_core::bail!(
            "Conv with {} groups over {c} channels: only dense, pointwise and depthwise convolutions are supported",
            spec.group
        )
    };
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, out_channels, 1, 1))?),
        None => Ok(y),
    }
}

/// Whether candle's own `conv2d` computes this dense convolution's gradients right: one
/// stride for both axes, and a stride that leaves the same remainder on both (its backward
/// pass gives both axes the first one's output padding). Where it does, it runs forward and
/// backward about twice as fast as the im2col product (`benches/depthwise.rs`, dense).
fn candles_backward_holds(x: &Tensor, spec: &ConvSpec) -> Result<bool> {
    let (_, _, h, w) = x.dims4()?;
    let [t, l, b, r] = spec.pads;
    let (sy, sx) = spec.stride;
    let (kh, kw) = spec.kernel;
    Ok(sy == sx && (h + t + b - kh) % sy == (w + l + r - kw) % sx)
}

/// A 1×1 convolution: `[O, C] × [N, C, H·W]`.
fn pointwise(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let o = weight.dim(0)?;
    let flat = x.reshape((n, c, h * w))?;
    let w2 = weight.reshape((1, o, c))?.broadcast_as((n, o, c))?;
    w2.matmul(&flat)?.reshape((n, o, h, w))
}

/// Each channel by its own k×k filter: the k·k shifted views of the padded input, each
/// times its tap's per-channel weight, summed.
pub fn depthwise(x: &Tensor, weight: &Tensor, spec: &ConvSpec) -> Result<Tensor> {
    let (_, c, h, w) = x.dims4()?;
    let (kh, kw) = spec.kernel;
    let taps = Taps::new(x, spec, Padding::Zeros)?;
    let (ho, wo) = spec.output_size(h, w);
    let filters = weight.reshape((c, kh * kw))?;
    let mut acc: Option<Tensor> = None;
    for ky in 0..kh {
        for kx in 0..kw {
            let tap = taps.at(ky, kx, ho, wo)?;
            let f = filters.narrow(1, ky * kw + kx, 1)?.reshape((1, c, 1, 1))?;
            let term = tap.broadcast_mul(&f)?;
            acc = Some(match acc {
                None => term,
                Some(a) => (a + term)?,
            });
        }
    }
    acc.ok_or_else(|| candle_core::Error::Msg("empty kernel".into()))
}

/// A full k×k convolution: the k·k shifted views stacked along channels (im2col), then one
/// matrix product.
pub fn dense(x: &Tensor, weight: &Tensor, spec: &ConvSpec) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (kh, kw) = spec.kernel;
    let o = weight.dim(0)?;
    let taps = Taps::new(x, spec, Padding::Zeros)?;
    let (ho, wo) = spec.output_size(h, w);
    let mut views = Vec::with_capacity(kh * kw);
    for ky in 0..kh {
        for kx in 0..kw {
            views.push(taps.at(ky, kx, ho, wo)?);
        }
    }
    // Rows ordered (tap, channel), so the weight goes [O, C, T] → [O, T, C].
    let cols = Tensor::cat(&views, 1)?.reshape((n, kh * kw * c, ho * wo))?;
    let w2 = weight
        .reshape((o, c, kh * kw))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((1, o, kh * kw * c))?
        .broadcast_as((n, o, kh * kw * c))?;
    w2.matmul(&cols)?.reshape((n, o, ho, wo))
}

/// Max over each window of `spec`'s geometry (its `group` is ignored). ONNX pads a max pool
/// with −∞; repeating the edge instead gives the same maxima, because a window that reads
/// padding also reads the edge value it repeats (pads are smaller than the kernel). candle's
/// `max_pool2d` has no padding, nor a backward pass when stride ≠ kernel.
pub fn max_pool2d(x: &Tensor, spec: &ConvSpec) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let (kh, kw) = spec.kernel;
    let [t, l, b, r] = spec.pads;
    if t >= kh || b >= kh || l >= kw || r >= kw {
        candle_core::bail!(
            "max pool pads {:?} reach past its {kh}×{kw} window",
            spec.pads
        );
    }
    let taps = Taps::new(x, spec, Padding::Edge)?;
    let (ho, wo) = spec.output_size(h, w);
    let mut acc = taps.at(0, 0, ho, wo)?;
    for ky in 0..kh {
        for kx in 0..kw {
            if (ky, kx) != (0, 0) {
                acc = acc.maximum(&taps.at(ky, kx, ho, wo)?)?;
            }
        }
    }
    Ok(acc)
}

/// What the border of a window reads outside the input.
#[derive(Clone, Copy)]
enum Padding {
    Zeros,
    /// The nearest edge value.
    Edge,
}

/// The padded input split by stride phase, so that every tap is a plain window of one
/// phase (no strided views, which candle lacks).
struct Taps {
    /// `phases[py * sx + px]`: rows `py, py + sy, …` and columns `px, px + sx, …`.
    phases: Vec<Tensor>,
    stride: (usize, usize),
}

impl Taps {
    fn new(x: &Tensor, spec: &ConvSpec, padding: Padding) -> Result<Self> {
        let (n, c, h, w) = x.dims4()?;
        let [t, l, b, r] = spec.pads;
        let (sy, sx) = spec.stride;
        // Extra padding at the end makes both sides multiples of the stride; no window reads it.
        let hp = (h + t + b).div_ceil(sy) * sy;
        let wp = (w + l + r).div_ceil(sx) * sx;
        let padded = match padding {
            Padding::Zeros => {
                x.pad_with_zeros(2, t, hp - h - t)?
                    .pad_with_zeros(3, l, wp - w - l)?
            }
            Padding::Edge => x
                .pad_with_same(2, t, hp - h - t)?
                .pad_with_same(3, l, wp - w - l)?,
        };
        if (sy, sx) == (1, 1) {
            return Ok(Self {
                phases: vec![padded],
                stride: (1, 1),
            });
        }
        let split = padded.reshape((n, c, hp / sy, sy, wp / sx, sx))?;
        let mut phases = Vec::with_capacity(sy * sx);
        for py in 0..sy {
            for px in 0..sx {
                let phase = split.narrow(3, py, 1)?.narrow(D::Minus1, px, 1)?;
                phases.push(phase.contiguous()?.reshape((n, c, hp / sy, wp / sx))?);
            }
        }
        Ok(Self {
            phases,
            stride: (sy, sx),
        })
    }

    /// The `[N, C, ho, wo]` input values that tap `(ky, kx)` multiplies.
    fn at(&self, ky: usize, kx: usize, ho: usize, wo: usize) -> Result<Tensor> {
        let (sy, sx) = self.stride;
        let phase = &self.phases[(ky % sy) * sx + kx % sx];
        phase.narrow(2, ky / sy, ho)?.narrow(3, kx / sx, wo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor, Var};

    /// What `conv2d` chooses, and for dense kernels the im2col product as well, against
    /// candle's own `conv2d` (symmetric padding only there, so the asymmetric case pads
    /// first): the output on a 9 × 10 input, and on a 9 × 9 one also the gradients that a
    /// random linear read-out of it sends to the input, the weight and the bias. (candle's
    /// `conv2d` backward gives both axes the first one's output padding, so with stride 2 it
    /// fails on sides of different parity: there `conv2d` takes the im2col product.)
    fn check(c: usize, o: usize, group: usize, k: usize, stride: usize, pads: [usize; 4]) {
        check_on(c, o, group, k, stride, pads, (9, 10));
        check_on(c, o, group, k, stride, pads, (9, 9));
    }

    fn check_on(
        c: usize,
        o: usize,
        group: usize,
        k: usize,
        stride: usize,
        pads: [usize; 4],
        (h, w): (usize, usize),
    ) {
        let dev = Device::Cpu;
        let var = |t: Tensor| Var::from_tensor(&t).unwrap();
        let x = var(Tensor::randn(0f32, 1., (2, c, h, w), &dev).unwrap());
        let weight = var(Tensor::randn(0f32, 1., (o, c / group, k, k), &dev).unwrap());
        let b = var(Tensor::randn(0f32, 1., o, &dev).unwrap());
        let spec = ConvSpec {
            group,
            kernel: (k, k),
            stride: (stride, stride),
            pads,
        };
        let dispatched = conv2d(&x, &weight, Some(&b), &spec).unwrap();
        let im2col = (group == 1 && !spec.is_pointwise()).then(|| {
            dense(&x, &weight, &spec)
                .unwrap()
                .broadcast_add(&b.reshape((1, o, 1, 1)).unwrap())
                .unwrap()
        });
        let [t, l, bo, r] = pads;
        let xp = x
            .pad_with_zeros(2, t, bo)
            .unwrap()
            .pad_with_zeros(3, l, r)
            .unwrap();
        let want = xp
            .conv2d(&weight, 0, stride, 1, group)
            .unwrap()
            .broadcast_add(&b.reshape((1, o, 1, 1)).unwrap())
            .unwrap();
        for got in std::iter::once(dispatched).chain(im2col) {
            compare(&got, &want, &spec, [&x, &weight, &b]);
        }
    }

    /// Outputs of two formulations, and on square inputs the gradients that a random linear
    /// read-out sends to the input, the weight and the bias.
    fn compare(got: &Tensor, want: &Tensor, spec: &ConvSpec, vars: [&Var; 3]) {
        assert_eq!(got.dims(), want.dims(), "{spec:?}");
        assert!(largest_difference(got, want) < 1e-4, "{spec:?}: outputs");
        let (_, _, h, w) = vars[0].dims4().unwrap();
        if h != w {
            return;
        }
        let read_out = Tensor::randn(0f32, 1., got.dims(), got.device()).unwrap();
        let grads = |y: &Tensor| {
            (y * &read_out)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        };
        let (ours, candles) = (grads(got), grads(want));
        for (name, v) in ["input", "weight", "bias"].into_iter().zip(vars) {
            let (a, e) = (ours.get(v).unwrap(), candles.get(v).unwrap());
            let diff = largest_difference(a, e);
            assert!(
                diff < 1e-4,
                "{spec:?}: gradient of the {name} differs by {diff}"
            );
        }
    }

    fn largest_difference(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn pointwise_depthwise_and_dense_equal_candles_conv2d_forward_and_backward() {
        check(6, 5, 1, 1, 1, [0; 4]);
        check(6, 6, 6, 3, 1, [1; 4]);
        check(6, 6, 6, 5, 1, [2; 4]);
        check(6, 6, 6, 3, 2, [0, 0, 1, 1]);
        check(6, 6, 6, 5, 2, [1, 1, 2, 2]);
        check(3, 4, 1, 3, 2, [0, 0, 1, 1]);
        check(3, 4, 1, 3, 1, [1; 4]);
        // ResNet's stem and its strided shortcut.
        check(3, 4, 1, 7, 2, [3; 4]);
        check(3, 4, 1, 1, 2, [0; 4]);
    }

    /// ResNet's 3×3, stride-2, pad-1 max pool against a direct loop over windows that skips
    /// the padding (ONNX's −∞), on inputs of both parities: the maxima, and the gradient of
    /// a random read-out, which is each window's read-out weight at its maximum's position
    /// (summed where windows overlap). candle's `max_pool2d` cannot serve as the reference:
    /// it has no padding, and for 2 × 2 windows its backward pass gives a quarter of this.
    #[test]
    fn max_pool_equals_the_window_maxima_and_routes_gradients_to_them() {
        let dev = Device::Cpu;
        let spec = ConvSpec {
            group: 1,
            kernel: (3, 3),
            stride: (2, 2),
            pads: [1; 4],
        };
        for (h, w) in [(9, 10), (8, 8), (7, 9)] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1., (2, 3, h, w), &dev).unwrap());
            let x = x.unwrap();
            let got = max_pool2d(&x, &spec).unwrap();
            let (want, argmax) = window_maxima(&x, 3, 2, 1);
            assert_eq!(got.dims(), want.dims());
            assert_eq!(largest_difference(&got, &want), 0.0, "{h}×{w}");
            let read_out = Tensor::randn(0f32, 1., got.dims(), &dev).unwrap();
            let grads = (&got * &read_out).unwrap().sum_all().unwrap().backward();
            let grad = grads.unwrap().get(&x).unwrap().clone();
            let weights: Vec<f32> = read_out.flatten_all().unwrap().to_vec1().unwrap();
            let mut expected = vec![0f32; x.elem_count()];
            for (window, &at) in argmax.iter().enumerate() {
                expected[at] += weights[window];
            }
            let expected = Tensor::from_vec(expected, x.dims(), &dev).unwrap();
            assert!(largest_difference(&grad, &expected) < 1e-6, "{h}×{w}");
        }
    }

    /// `[N, C, ho, wo]` maxima of the k×k windows at stride s over the input padded by p
    /// on every side, reading only real values; and each maximum's flat index in `x`.
    fn window_maxima(x: &Tensor, k: usize, s: usize, p: usize) -> (Tensor, Vec<usize>) {
        let (n, c, h, w) = x.dims4().unwrap();
        let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        let (mut out, mut argmax) = (Vec::new(), Vec::new());
        for (i, plane) in v.chunks(h * w).enumerate() {
            for oy in 0..ho {
                for ox in 0..wo {
                    let (mut m, mut at) = (f32::NEG_INFINITY, 0);
                    for y in (oy * s).saturating_sub(p)..(oy * s + k - p).min(h) {
                        for x in (ox * s).saturating_sub(p)..(ox * s + k - p).min(w) {
                            if plane[y * w + x] > m {
                                (m, at) = (plane[y * w + x], y * w + x);
                            }
                        }
                    }
                    out.push(m);
                    argmax.push(i * h * w + at);
                }
            }
        }
        let maxima = Tensor::from_vec(out, (n, c, ho, wo), &Device::Cpu).unwrap();
        (maxima, argmax)
    }
}
