//! Depthwise convolution, forward and backward, on two layers of the hand landmark network
//! (batch 8): candle's grouped `conv2d` against the shifted multiply-adds the fine-tuning
//! translator uses (`finetune::conv::depthwise`). And dense 3×3 convolutions of ResNet-50's
//! bottlenecks: candle's `conv2d` against the im2col product (`finetune::conv::dense`), which
//! `finetune::conv::conv2d` keeps for the strides where candle's backward pass fails.
//!
//!   cargo bench -p handmatch-trainer --bench depthwise

use candle_core::{Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};
use handmatch_trainer::finetune::conv::{dense, depthwise, ConvSpec};

/// (channels, size, kernel): an early 3×3 layer at 56 px and a late 5×5 layer at 14 px.
const LAYERS: [(usize, usize, usize); 2] = [(144, 56, 3), (672, 14, 5)];

/// (channels, size): ResNet-50's first-stage and third-stage 3×3 bottleneck convolutions.
const DENSE: [(usize, usize); 2] = [(64, 56), (256, 14)];

/// A standard-normal variable of `shape` on the CPU.
fn random_var(shape: (usize, usize, usize, usize)) -> Var {
    Var::from_tensor(&Tensor::randn(0f32, 1., shape, &Device::Cpu).unwrap()).unwrap()
}

fn bench_dense(c: &mut Criterion) {
    for (ch, size) in DENSE {
        let x = random_var((8, ch, size, size));
        let w = random_var((ch, ch, 3, 3));
        let spec = ConvSpec {
            group: 1,
            kernel: (3, 3),
            stride: (1, 1),
            pads: [1; 4],
        };
        let mut group = c.benchmark_group(format!("dense {ch}ch {size}px 3x3, batch 8"));
        group.sample_size(10);
        group.bench_function("candle conv2d, forward + backward", |b| {
            b.iter(|| {
                let y = x.as_tensor().conv2d(w.as_tensor(), 1, 1, 1, 1).unwrap();
                y.sum_all().unwrap().backward().unwrap()
            })
        });
        group.bench_function("im2col product, forward + backward", |b| {
            b.iter(|| {
                let y = dense(x.as_tensor(), w.as_tensor(), &spec).unwrap();
                y.sum_all().unwrap().backward().unwrap()
            })
        });
        group.finish();
    }
}

fn bench(c: &mut Criterion) {
    for (ch, size, k) in LAYERS {
        let x = random_var((8, ch, size, size));
        let w = random_var((ch, 1, k, k));
        let pad = k / 2;
        let spec = ConvSpec {
            group: ch,
            kernel: (k, k),
            stride: (1, 1),
            pads: [pad; 4],
        };
        let mut group = c.benchmark_group(format!("depthwise {ch}ch {size}px {k}x{k}, batch 8"));
        group.sample_size(10);
        group.bench_function(
            "candle conv2d(groups = channels), forward + backward",
            |b| {
                b.iter(|| {
                    let y = x.as_tensor().conv2d(w.as_tensor(), pad, 1, 1, ch).unwrap();
                    y.sum_all().unwrap().backward().unwrap()
                })
            },
        );
        group.bench_function("shifted multiply-adds, forward + backward", |b| {
            b.iter(|| {
                let y = depthwise(x.as_tensor(), w.as_tensor(), &spec).unwrap();
                y.sum_all().unwrap().backward().unwrap()
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench, bench_dense);
criterion_main!(benches);
