//! The service's artefact: preprocessing, backbone and head in one graph, with metadata,
//! checked against the same steps done separately; and the exporter's refusals.

mod common;

use std::path::Path;

use common::{images, normalised};
use handmatch_core::embed::backbone_session::BackboneSession;
use handmatch_core::embed::{EmbeddingSession, RuntimeOptions};
use handmatch_export::artefact::{artefact_model, backbone_model, HeadSource};
use handmatch_export::checkpoint::Checkpoint;
use handmatch_export::head::{EnsembleHead, EnsembleMember, Head, LinearHead, MlpHead};
use handmatch_export::random_init::{self, Arch};
use handmatch_export::tensor::Tensor;
use ndarray::Axis;

fn no_files_left(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

/// The artefact equals backbone → head computed separately (normalisation in Rust, head on
/// the CPU with an unfolded BatchNorm), to 1e-5.
fn artefact_matches_its_parts(arch: Arch, image_size: usize, kind: HeadKind) {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt_dir = tmp.path().join("ckpt");
    random_init::write(arch, 7, &ckpt_dir).unwrap();
    let ckpt = Checkpoint::open(&ckpt_dir).unwrap();

    let backbone_path = tmp.path().join("backbone.onnx");
    backbone_model(&ckpt, image_size)
        .unwrap()
        .save(&backbone_path)
        .unwrap();
    let mut backbone = BackboneSession::open(&backbone_path, &RuntimeOptions::default()).unwrap();
    let imgs = images(3, image_size, 1);
    let features = backbone.run(normalised(&imgs).view()).unwrap();

    let head: Head = match kind {
        HeadKind::Mlp => MlpHead::random(features.ncols(), 32, 16, 3).into(),
        HeadKind::Linear => linear_head(features.ncols(), 16).into(),
        HeadKind::Ensemble => ensemble_head(features.ncols()),
    };
    let head_path = tmp.path().join("head.safetensors");
    head.save(&head_path).unwrap();
    let head = Head::load(&head_path).unwrap();
    let expected = head.forward(features.as_slice().unwrap());

    let model_path = tmp.path().join("model.onnx");
    let (model, meta) =
        artefact_model(&ckpt, image_size, HeadSource::Trained(Box::new(head)), None).unwrap();
    model.save(&model_path).unwrap();
    let mut session = EmbeddingSession::open(&model_path, &RuntimeOptions::default()).unwrap();
    assert_eq!(session.metadata(), &meta);
    assert_eq!(session.metadata().input_size as usize, image_size);
    assert_eq!(session.metadata().embedding_dim, 16);
    assert_eq!(session.metadata().training, None);
    let got = session.embed(imgs.view()).unwrap();
    assert_eq!(got.dim(), (3, 16));
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() <= 1e-5, "{arch:?}: {g} vs {e}");
    }
    for row in got.axis_iter(Axis(0)) {
        let norm = row.dot(&row).sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "embedding norm {norm}");
    }
    // Different images give different embeddings: nothing is constant.
    assert!((&got.row(0) - &got.row(1)).iter().any(|d| d.abs() > 1e-3));
}

#[derive(Debug, Clone, Copy)]
enum HeadKind {
    Mlp,
    Linear,
    Ensemble,
}

/// Three members, 16-d in all: a linear head on every column, an MLP on the second half
/// weighted 3, a linear head on the first quarter.
fn ensemble_head(d: usize) -> Head {
    let members = vec![
        EnsembleMember {
            columns: (0, d),
            weight: 1.0,
            head: linear_head(d, 8).into(),
        },
        EnsembleMember {
            columns: (d / 2, d),
            weight: 3.0,
            head: MlpHead::random(d - d / 2, 16, 4, 9).into(),
        },
        EnsembleMember {
            columns: (0, d / 4),
            weight: 0.5,
            head: linear_head(d / 4, 4).into(),
        },
    ];
    Head::Ensemble(EnsembleHead::new(d, members).unwrap())
}

/// A linear head with varied weights, as LDA would give.
fn linear_head(input_dim: usize, embedding_dim: usize) -> LinearHead {
    let w = (0..embedding_dim * input_dim)
        .map(|i| (i as f32 * 0.731).sin() * 0.2)
        .collect();
    let b = (0..embedding_dim)
        .map(|i| (i as f32 * 0.37).cos() * 0.1)
        .collect();
    LinearHead::new(
        Tensor::new(vec![embedding_dim, input_dim], w),
        Tensor::new(vec![embedding_dim], b),
    )
}

#[test]
fn dinov2_artefact_equals_backbone_then_head_at_interpolated_size() {
    artefact_matches_its_parts(Arch::Dinov2Tiny, 112, HeadKind::Mlp);
}

#[test]
fn resnet_artefact_equals_backbone_then_head() {
    artefact_matches_its_parts(Arch::ResnetTiny, 64, HeadKind::Mlp);
}

#[test]
fn a_linear_head_artefact_equals_backbone_then_linear_head() {
    artefact_matches_its_parts(Arch::ResnetTiny, 64, HeadKind::Linear);
}

#[test]
fn an_ensemble_head_artefact_equals_backbone_then_its_members() {
    artefact_matches_its_parts(Arch::ResnetTiny, 64, HeadKind::Ensemble);
}

#[test]
fn model_id_depends_on_weights_and_input_size_only() {
    let tmp = tempfile::tempdir().unwrap();
    random_init::write(Arch::ResnetTiny, 1, tmp.path()).unwrap();
    let ckpt = Checkpoint::open(tmp.path()).unwrap();
    let random = |seed| HeadSource::Random {
        hidden: 8,
        embedding_dim: 4,
        seed,
    };
    let id = |size, seed| {
        artefact_model(&ckpt, size, random(seed), None)
            .unwrap()
            .1
            .model_id
    };
    assert_eq!(id(64, 1), id(64, 1), "same inputs, same id");
    assert_ne!(id(64, 1), id(64, 2), "another head");
    assert_ne!(id(64, 1), id(96, 1), "another input size");
}

#[test]
fn embed_refuses_a_batch_of_the_wrong_size() {
    let tmp = tempfile::tempdir().unwrap();
    random_init::write(Arch::ResnetTiny, 1, tmp.path()).unwrap();
    let ckpt = Checkpoint::open(tmp.path()).unwrap();
    let path = tmp.path().join("model.onnx");
    let head = HeadSource::Random {
        hidden: 8,
        embedding_dim: 4,
        seed: 0,
    };
    artefact_model(&ckpt, 64, head, None)
        .unwrap()
        .0
        .save(&path)
        .unwrap();
    let mut session = EmbeddingSession::open(&path, &RuntimeOptions::default()).unwrap();
    let err = session
        .embed(images(1, 32, 0).view())
        .unwrap_err()
        .to_string();
    assert!(err.contains("[N, 64, 64, 3]"), "{err}");
}

#[test]
fn a_backbone_graph_is_not_accepted_as_an_artefact() {
    let tmp = tempfile::tempdir().unwrap();
    random_init::write(Arch::ResnetTiny, 1, tmp.path()).unwrap();
    let ckpt = Checkpoint::open(tmp.path()).unwrap();
    let path = tmp.path().join("backbone.onnx");
    backbone_model(&ckpt, 64).unwrap().save(&path).unwrap();
    let err = EmbeddingSession::open(&path, &RuntimeOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("handmatch.format"), "{err}");
}

// ---- bad checkpoints: the message names the culprit, and nothing is written ----

fn tiny_checkpoint(dir: &Path) {
    random_init::write(Arch::Dinov2Tiny, 0, dir).unwrap();
}

/// Rewrites the checkpoint's safetensors through `edit`.
fn edit_tensors(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            let data = v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (n, v.shape().to_vec(), data)
        })
        .collect();
    edit(&mut tensors);
    let owned: Vec<handmatch_export::tensor::Tensor> = tensors
        .iter()
        .map(|(_, s, d)| handmatch_export::tensor::Tensor::new(s.clone(), d.clone()))
        .collect();
    let refs: Vec<(&str, &handmatch_export::tensor::Tensor)> = tensors
        .iter()
        .zip(&owned)
        .map(|((n, _, _), t)| (n.as_str(), t))
        .collect();
    handmatch_export::head::file::write_safetensors(&path, &refs).unwrap();
}

fn export_error(ckpt_dir: &Path, image_size: usize) -> String {
    let out = tempfile::tempdir().unwrap();
    let result = Checkpoint::open(ckpt_dir).and_then(|ckpt| {
        let head = HeadSource::Random {
            hidden: 8,
            embedding_dim: 4,
            seed: 0,
        };
        let (model, _) = artefact_model(&ckpt, image_size, head, None)?;
        model
            .save(&out.path().join("model.onnx"))
            .map_err(handmatch_export::error::ExportError::io(out.path()))
    });
    let err = result.expect_err("export should fail").to_string();
    no_files_left(out.path());
    err
}

#[test]
fn missing_tensor_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_checkpoint(tmp.path());
    edit_tensors(tmp.path(), |t| {
        t.retain(|(n, _, _)| n != "encoder.layer.1.norm2.weight")
    });
    let err = export_error(tmp.path(), 224);
    assert!(
        err.contains("`encoder.layer.1.norm2.weight` is missing"),
        "{err}"
    );
}

#[test]
fn tensor_of_the_wrong_shape_is_named_with_both_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_checkpoint(tmp.path());
    edit_tensors(tmp.path(), |t| {
        let e = t
            .iter_mut()
            .find(|(n, _, _)| n == "encoder.layer.0.mlp.fc1.weight")
            .unwrap();
        e.1 = vec![128, 128];
        e.2.truncate(128 * 128);
    });
    let err = export_error(tmp.path(), 224);
    assert!(
        err.contains("`encoder.layer.0.mlp.fc1.weight` has shape [128, 128], expected [256, 64]"),
        "{err}"
    );
}

#[test]
fn unsupported_model_type_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_checkpoint(tmp.path());
    let cfg = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"dinov2\"", "\"vit\"");
    std::fs::write(&cfg, text).unwrap();
    let err = export_error(tmp.path(), 224);
    assert!(err.contains("unsupported model_type `vit`"), "{err}");
}

#[test]
fn image_size_not_a_multiple_of_the_patch_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_checkpoint(tmp.path());
    let err = export_error(tmp.path(), 225);
    assert!(
        err.contains("225 is not a multiple of the checkpoint's patch_size 14"),
        "{err}"
    );
}

#[test]
fn config_field_of_the_wrong_type_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_checkpoint(tmp.path());
    let cfg = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"hidden_size\": 64", "\"hidden_size\": \"wide\"");
    std::fs::write(&cfg, text).unwrap();
    let err = export_error(tmp.path(), 224);
    assert!(err.contains("field `hidden_size`"), "{err}");
}

#[test]
fn missing_weights_file_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_checkpoint(tmp.path());
    std::fs::remove_file(tmp.path().join("model.safetensors")).unwrap();
    let err = export_error(tmp.path(), 224);
    assert!(err.contains("no model.safetensors"), "{err}");
}

#[test]
fn head_for_another_backbone_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_checkpoint(tmp.path());
    let ckpt = Checkpoint::open(tmp.path()).unwrap();
    let head = HeadSource::Trained(Box::new(MlpHead::random(768, 8, 4, 0).into()));
    let err = artefact_model(&ckpt, 224, head, None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("768-d features but the backbone gives 64-d"),
        "{err}"
    );
}

#[test]
fn half_precision_checkpoints_load_as_f32() {
    let tmp = tempfile::tempdir().unwrap();
    let data: Vec<u8> = [1.5f32, -2.25]
        .iter()
        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
        .collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::BF16, vec![2], &data).unwrap();
    let bytes = safetensors::serialize([("layernorm.weight", view)], None).unwrap();
    std::fs::write(tmp.path().join("model.safetensors"), bytes).unwrap();
    std::fs::write(
        tmp.path().join("config.json"),
        r#"{"model_type": "dinov2"}"#,
    )
    .unwrap();
    let ckpt = Checkpoint::open(tmp.path()).unwrap();
    assert_eq!(
        ckpt.get("layernorm.weight", &[2]).unwrap().data,
        vec![1.5, -2.25]
    );
}
