//! Fine-tuning the hand network on aligned synthetic hands: a run stopped after its first
//! epoch and resumed ends at the same weights as an uninterrupted run; training moves the
//! trunk and leaves the landmark heads as they were; and an artefact whose features read
//! the tuned trunk still finds the hand (its alignment keeps the original weights).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use candle_core::Device;
use common::hand_model;
use handmatch_core::embed::RuntimeOptions;
use handmatch_export::backbone::BackboneSpec;
use handmatch_export::onnx::proto::ModelProto;
use handmatch_trainer::extract::{extract, ExtractOptions};
use handmatch_trainer::finetune::{
    initializers, AlignedCrops, BackboneSource, FineTuneConfig, FineTuneJob, TrainLayers,
};
use handmatch_trainer::pipeline::export_backbone;
use prost::Message;

fn weights(path: &Path) -> HashMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap();
    let graph = ModelProto::decode(bytes.as_slice()).unwrap().graph.unwrap();
    initializers::read_all(&graph, &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn resumed_fine_tuning_reaches_the_uninterrupted_weights_and_alignment_survives() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::synthetic_hands(dir.path(), 4, 5, 2);
    let images: Vec<_> = data.images.iter().collect();
    let aligner = dir.path().join("hand-backbone.onnx");
    export_backbone(&BackboneSpec::hand(hand_model()), 224, &aligner).unwrap();
    let crops = AlignedCrops::build(
        &images,
        &aligner,
        &dir.path().join("crops.safetensors"),
        &RuntimeOptions::default(),
        false,
    )
    .unwrap();
    assert_eq!(
        crops.len(),
        images.len(),
        "a synthetic hand was not aligned"
    );
    let subjects: BTreeSet<String> = images.iter().map(|i| i.subject.clone()).collect();
    let val: BTreeSet<String> = subjects.iter().take(2).cloned().collect();
    let train: BTreeSet<String> = subjects.difference(&val).cloned().collect();
    let config = FineTuneConfig {
        epochs: 2,
        p: 2,
        k: 1,
        lr: 1e-2,
        train_layers: TrainLayers::Last(3),
        accumulate: 2,
        seed: 3,
        ..FineTuneConfig::default()
    };
    let hand = BackboneSource::HandGraph(hand_model());
    let (whole, resumed) = common::run_whole_and_resumed(&FineTuneJob {
        crops: &crops,
        train: &train,
        val: &val,
        source: &hand,
        config,
        out: dir.path().to_path_buf(),
        resume: false,
        stop_after: None,
        progress: false,
    });
    assert_eq!(whole.progress.history.len(), 2);
    assert_eq!(
        resumed.progress.history.len(),
        2,
        "the resumed run redid or skipped epochs"
    );
    assert_eq!(
        resumed.progress.history[1].mean_loss, whole.progress.history[1].mean_loss,
        "epoch 2's loss differs after resuming"
    );

    let original = weights(&hand_model());
    let tuned = weights(&whole.tuned_model);
    let again = weights(&resumed.tuned_model);
    let mut moved = 0;
    for (name, before) in &original {
        let after = &tuned[name];
        assert!(
            largest_difference(after, &again[name]) <= 1e-6,
            "`{name}`: the resumed run ends {} away from the uninterrupted one",
            largest_difference(after, &again[name])
        );
        if largest_difference(before, after) > 0.0 {
            moved += 1;
        }
    }
    assert!(
        (1..=6).contains(&moved),
        "{moved} tensors changed: the last three convolutions (weight and bias) should, nothing else"
    );

    // The artefact's backbone with features from the tuned trunk still aligns every hand,
    // and its trunk features differ from the original's.
    let features = handmatch_export::backbone::HandFeatureSet::default();
    let mut pooled = Vec::new();
    for (name, trunk) in [("plain", None), ("tuned", Some(whole.tuned_model.clone()))] {
        let path = dir.path().join(format!("{name}.onnx"));
        let spec = BackboneSpec {
            hand_features: features.clone(),
            hand_trunk: trunk,
            ..BackboneSpec::hand(hand_model())
        };
        export_backbone(&spec, 224, &path).unwrap();
        let cache = extract(
            &images,
            &dir.path().join(format!("{name}.safetensors")),
            &ExtractOptions {
                backbone: path,
                views: 0,
                seed: 0,
                batch_size: 8,
                runtime: RuntimeOptions::default(),
                progress: false,
            },
        )
        .unwrap();
        assert_eq!(
            cache.images.len(),
            images.len(),
            "{name}: a hand was not found"
        );
        pooled.push(cache.eval);
    }
    let geometry = handmatch_export::backbone::hand::GEOMETRY_DIM;
    let geometry_a: Vec<f32> = pooled[0]
        .slice(ndarray::s![.., ..geometry])
        .iter()
        .copied()
        .collect();
    let geometry_b: Vec<f32> = pooled[1]
        .slice(ndarray::s![.., ..geometry])
        .iter()
        .copied()
        .collect();
    let trunk_a: Vec<f32> = pooled[0]
        .slice(ndarray::s![.., geometry..])
        .iter()
        .copied()
        .collect();
    let trunk_b: Vec<f32> = pooled[1]
        .slice(ndarray::s![.., geometry..])
        .iter()
        .copied()
        .collect();
    assert!(
        largest_difference(&geometry_a, &geometry_b) <= 1e-5,
        "landmark geometry changed with the tuned trunk: {}",
        largest_difference(&geometry_a, &geometry_b)
    );
    assert!(
        largest_difference(&trunk_a, &trunk_b) > 1e-4,
        "the tuned trunk's features equal the original's"
    );
}
