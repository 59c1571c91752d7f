//! ResNet as a trainable candle network: its forward equals ONNX Runtime on the exported
//! graph and transformers' recorded output for the exporter's parity fixtures; gradients
//! reach every trained tensor; training batch norms normalise by the batch and move their
//! running statistics by PyTorch's rule; the checkpoint it writes (statistics included)
//! exports to what the network computes; and a resumed run ends where an uninterrupted one
//! does, running statistics included.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor, Var};
use handmatch_export::checkpoint::Checkpoint;
use handmatch_export::random_init::{self, Arch};
use handmatch_trainer::finetune::resnet_net::ResnetNet;
use handmatch_trainer::finetune::{
    AlignedCrops, BackboneSource, FineTuneConfig, FineTuneJob, TrainLayers,
};

use common::parity::{
    fixture, largest_difference, max_abs, normalised, onnx_runtime_output, values, Recorded,
    RELATIVE_TOLERANCE,
};

fn open(dir: &Path, layers: TrainLayers, freeze_batchnorm: bool) -> ResnetNet {
    ResnetNet::open(dir, layers, freeze_batchnorm, &Device::Cpu).unwrap()
}

fn check_parity(name: &str, image_size: usize) {
    let dir = fixture(name);
    let recorded = Recorded::read(&dir);
    let net = open(&dir, TrainLayers::All, true);
    let candle = net.forward_normalised(&recorded.pixel_values).unwrap();
    recorded.assert_matches(name, &dir, image_size, &candle);
}

#[test]
fn candle_resnet_bottleneck_at_224_matches_onnx_runtime_and_transformers() {
    check_parity("resnet_bottleneck_224", 224);
}

#[test]
fn candle_resnet_basic_blocks_strided_in_stage_0_match() {
    check_parity("resnet_basic_96", 96);
}

fn images(n: usize, side: usize, seed: u64) -> Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let data: Vec<f32> = (0..n * 3 * side * side).map(|_| rng.random()).collect();
    Tensor::from_vec(data, (n, 3, side, side), &Device::Cpu).unwrap()
}

/// How many of `vars` get a nonzero gradient from the sum of squared features.
fn reached(net: &ResnetNet, x: &Tensor, training: bool, vars: &[(String, Var)]) -> usize {
    let loss = net.forward(x, training).unwrap().sqr().unwrap().sum_all();
    let grads = loss.unwrap().backward().unwrap();
    vars.iter()
        .filter(|(_, v)| {
            grads
                .get(v.as_tensor())
                .is_some_and(|g| max_abs(&values(g)) > 0.0)
        })
        .count()
}

/// The exported graph of the checkpoint `net` writes, run by ONNX Runtime on `x`, against
/// the network's evaluation features.
fn assert_written_checkpoint_exports_what_the_net_computes(net: &ResnetNet, x: &Tensor) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tuned");
    net.save_checkpoint(&out).unwrap();
    let ours = values(&net.forward(x, false).unwrap());
    let side = x.dims4().unwrap().3;
    let exported = onnx_runtime_output(&out, side, &normalised(x));
    let diff = largest_difference(&ours, &exported);
    assert!(
        diff <= RELATIVE_TOLERANCE * max_abs(&ours),
        "the tuned checkpoint exports to features {diff} away"
    );
}

#[test]
fn gradients_reach_every_trained_tensor_and_the_written_checkpoint_exports_what_the_net_computes() {
    let dir = fixture("resnet_basic_96");
    let net = open(&dir, TrainLayers::All, true);
    let x = images(2, 64, 1);
    let vars = net.vars();
    // Every float tensor but the running statistics, which frozen batch norms keep.
    let expected = Checkpoint::open(&dir)
        .unwrap()
        .tensors()
        .filter(|(n, _)| !n.contains(".running_"))
        .count();
    assert_eq!(vars.len(), expected);
    assert_eq!(reached(&net, &x, true, &vars), expected);
    assert!(
        net.statistics().is_empty(),
        "frozen batch norms update nothing"
    );

    // Last-1 trains the last residual block only (depths 1, 2, 1, 1).
    let last = open(&dir, TrainLayers::Last(1), true);
    let names: Vec<String> = last.vars().into_iter().map(|(n, _)| n).collect();
    assert!(!names.is_empty());
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("encoder.stages.3.layers.0.")),
        "{names:?}"
    );

    // One step moves the weights; the written checkpoint exports to what the net computes.
    let before = values(&net.forward(&x, false).unwrap());
    let loss = net.forward(&x, true).unwrap().sqr().unwrap().sum_all();
    let grads = loss.unwrap().backward().unwrap();
    for (_, v) in &vars {
        let g = grads.get(v.as_tensor()).unwrap();
        v.set(&(v.as_tensor() - (g * 1e-3).unwrap()).unwrap())
            .unwrap();
    }
    let after = values(&net.forward(&x, false).unwrap());
    assert!(
        largest_difference(&after, &before) > 1e-3,
        "the step changed nothing"
    );
    assert_written_checkpoint_exports_what_the_net_computes(&net, &x);
}

/// `[C]` per-channel mean and biased variance over batch and space of `y [N, C, H, W]`.
fn channel_statistics(y: &Tensor) -> (Vec<f32>, Vec<f32>) {
    let (n, c, h, w) = y.dims4().unwrap();
    let v = values(y);
    let count = (n * h * w) as f64;
    let (mut mean, mut var) = (vec![0f32; c], vec![0f32; c]);
    for ch in 0..c {
        let at = |i: usize| v[(i / (h * w)) * c * h * w + ch * h * w + i % (h * w)] as f64;
        let m = (0..n * h * w).map(at).sum::<f64>() / count;
        let s = (0..n * h * w).map(|i| (at(i) - m).powi(2)).sum::<f64>() / count;
        (mean[ch], var[ch]) = (m as f32, s as f32);
    }
    (mean, var)
}

fn blended(old: &[f32], batch: &[f32]) -> Vec<f32> {
    old.iter()
        .zip(batch)
        .map(|(o, b)| 0.9 * o + 0.1 * b)
        .collect()
}

#[test]
fn training_batch_norms_use_the_batch_and_move_their_running_statistics() {
    let dir = fixture("resnet_basic_96");
    let net = open(&dir, TrainLayers::All, false);
    let stats: BTreeSet<String> = net.statistics().into_iter().map(|(n, _)| n).collect();
    let ckpt = Checkpoint::open(&dir).unwrap();
    let running: BTreeSet<String> = ckpt
        .tensors()
        .map(|(n, _)| n.to_string())
        .filter(|n| n.ends_with(".running_mean") || n.ends_with(".running_var"))
        .collect();
    assert_eq!(
        stats, running,
        "every batch norm's statistics, nothing else"
    );

    // The stem's batch statistics, from candle's own convolution of the normalised input.
    let x = images(3, 64, 2);
    let pixels = normalised(&x);
    let pixels = Tensor::from_vec(
        pixels.iter().copied().collect::<Vec<f32>>(),
        x.dims(),
        &Device::Cpu,
    )
    .unwrap();
    let stem = "embedder.embedder";
    let w = ckpt
        .tensors()
        .find(|(n, _)| *n == format!("{stem}.convolution.weight"));
    let w = w.unwrap().1;
    let w = Tensor::from_vec(w.data.clone(), w.shape.clone(), &Device::Cpu).unwrap();
    let conv = pixels.conv2d(&w, 3, 2, 1, 1).unwrap();
    let (batch_mean, batch_var) = channel_statistics(&conv);
    let count = (conv.dims()[0] * conv.dims()[2] * conv.dims()[3]) as f32;
    let unbiased: Vec<f32> = batch_var
        .iter()
        .map(|v| v * count / (count - 1.0))
        .collect();
    let stat = |t: &str| {
        let var = &net
            .statistics()
            .into_iter()
            .find(|(n, _)| n == t)
            .unwrap()
            .1;
        values(var.as_tensor())
    };
    let (mean0, var0) = (
        stat(&format!("{stem}.normalization.running_mean")),
        stat(&format!("{stem}.normalization.running_var")),
    );

    let evaluated = values(&net.forward(&x, false).unwrap());
    assert_eq!(stat(&format!("{stem}.normalization.running_mean")), mean0);
    let trained = values(&net.forward(&x, true).unwrap());
    let mean1 = stat(&format!("{stem}.normalization.running_mean"));
    let var1 = stat(&format!("{stem}.normalization.running_var"));
    assert!(largest_difference(&mean1, &blended(&mean0, &batch_mean)) <= 1e-4);
    assert!(largest_difference(&var1, &blended(&var0, &unbiased)) <= 1e-4 * max_abs(&var1));
    assert!(
        largest_difference(&trained, &evaluated) > 1e-2,
        "training features did not use the batch's statistics"
    );
    assert_eq!(reached(&net, &x, true, &net.vars()), net.vars().len());

    // Evaluation reads the running statistics: an image alone equals its row of the batch,
    // and the written checkpoint carries them into the exported graph.
    let batch = values(&net.forward(&x, false).unwrap());
    let alone = values(&net.forward(&x.narrow(0, 1, 1).unwrap(), false).unwrap());
    let width = alone.len();
    assert!(largest_difference(&alone, &batch[width..2 * width]) <= 1e-5);
    assert_written_checkpoint_exports_what_the_net_computes(&net, &x);
}

fn checkpoint_values(dir: &Path) -> HashMap<String, Vec<f32>> {
    Checkpoint::open(dir)
        .unwrap()
        .tensors()
        .map(|(n, t)| (n.to_string(), t.data.clone()))
        .collect()
}

#[test]
fn resumed_resnet_fine_tuning_with_training_batch_norms_reaches_the_uninterrupted_state() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synthetic_hands(dir.path(), 4, 6, 2);
    let images: Vec<_> = data.images.iter().collect();
    let crops = AlignedCrops::centre_cropped(&images, 64).unwrap();
    let subjects: BTreeSet<String> = images.iter().map(|i| i.subject.clone()).collect();
    let val: BTreeSet<String> = subjects.iter().take(1).cloned().collect();
    let train: BTreeSet<String> = subjects.difference(&val).cloned().collect();
    let resnet = dir.path().join("resnet-tiny");
    random_init::write(Arch::ResnetTiny, 4, &resnet).unwrap();
    let source = BackboneSource::Checkpoint {
        dir: resnet.clone(),
        image_size: 64,
    };
    let config = FineTuneConfig {
        epochs: 2,
        p: 2,
        k: 1,
        lr: 1e-2,
        train_layers: TrainLayers::Last(2),
        freeze_batchnorm: false,
        accumulate: 2,
        seed: 5,
        ..FineTuneConfig::default()
    };
    let (whole, resumed) = common::run_whole_and_resumed(&FineTuneJob {
        crops: &crops,
        train: &train,
        val: &val,
        source: &source,
        config,
        out: dir.path().to_path_buf(),
        resume: false,
        stop_after: None,
        progress: false,
    });
    assert_eq!(resumed.progress.history.len(), 2);

    let original = checkpoint_values(&resnet);
    let tuned = checkpoint_values(&whole.tuned_model);
    let again = checkpoint_values(&resumed.tuned_model);
    let mut moved = BTreeSet::new();
    for (name, before) in &original {
        let diff = largest_difference(&tuned[name], &again[name]);
        assert!(diff <= 1e-6, "`{name}`: the resumed run ends {diff} away");
        if largest_difference(before, &tuned[name]) > 0.0 {
            moved.insert(name.clone());
        }
    }
    // The last two blocks are the last two stages' (one block each).
    assert!(moved
        .iter()
        .all(|n| n.starts_with("encoder.stages.2.") || n.starts_with("encoder.stages.3.")));
    assert!(
        moved.iter().any(|n| n.ends_with(".running_var")),
        "no running statistic moved: {moved:?}"
    );
    assert!(moved.iter().any(|n| n.ends_with(".convolution.weight")));
}

#[test]
fn bf16_autocast_is_refused_for_resnet_naming_the_flag() {
    use handmatch_trainer::finetune::{Autocast, NetOptions, TrainedNet};
    let source = BackboneSource::Checkpoint {
        dir: fixture("resnet_basic_96"),
        image_size: 96,
    };
    let options = NetOptions {
        layers: TrainLayers::All,
        freeze_batchnorm: true,
        autocast: Autocast::Bf16,
    };
    let refused = TrainedNet::open(&source, options, &Device::Cpu);
    let message = refused.err().expect("refused").to_string();
    assert!(message.contains("--autocast"), "{message}");
    let f32_options = NetOptions {
        autocast: Autocast::Off,
        ..options
    };
    assert!(TrainedNet::open(&source, f32_options, &Device::Cpu).is_ok());
}
