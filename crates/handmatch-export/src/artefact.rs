//! The two model files the trainer writes:
//! - the backbone alone (`pixel_values [N,3,S,S]` → `features [N,D]`), for feature
//!   extraction and parity checks;
//! - the service's artefact (`image` uint8 `[N,S,S,3]` → `embedding [N,E]`): normalisation,
//!   backbone, projection head and L2 normalisation in one graph, with its metadata.

use handmatch_core::embed::metadata::{
    keys, pixel_scale_shift, ArtefactMetadata, Precision, IMAGENET_MEAN, IMAGENET_STD,
};
use handmatch_core::embed::preprocess::default_decode;
use handmatch_core::embed::session::{INPUT_NAME, OUTPUT_NAME};

use crate::backbone::{self, Backbone, Built};
use crate::error::{ExportError, Result};
use crate::head::{Head, MlpHead};
use crate::onnx::graph::Attr;
use crate::onnx::proto::tensor_proto::DataType;
use crate::onnx::{Dim, GraphBuilder, ModelFile};
use handmatch_core::hand::AlignmentSpec;
use handmatch_core::training_summary::TrainingSummary;

use handmatch_core::embed::backbone_session::{FEATURES_NAME, PIXELS_NAME};
/// The backbone graph's metadata key for its `Features::layout`.
pub const FEATURE_LAYOUT: &str = "feature_layout";
/// With a hand backbone: what the landmark model sees in the input crop, for alignment.
pub const PRESENCE_NAME: &str = "presence";
pub const LANDMARKS_NAME: &str = "landmarks";

/// Declares the hand model's outputs, when there is one.
fn hand_outputs(g: &mut GraphBuilder, built: &Built) -> Option<AlignmentSpec> {
    let (presence, landmarks) = built.hand.as_ref()?;
    g.output(
        presence,
        PRESENCE_NAME,
        DataType::Float,
        &[Dim::Named("batch"), Dim::Fixed(1)],
    );
    g.output(
        landmarks,
        LANDMARKS_NAME,
        DataType::Float,
        &[Dim::Named("batch"), Dim::Fixed(63)],
    );
    Some(AlignmentSpec::default())
}

/// Where the head comes from.
pub enum HeadSource {
    Trained(Box<Head>),
    Random {
        hidden: usize,
        embedding_dim: usize,
        seed: u64,
    },
}

fn check_size(image_size: usize) -> Result<()> {
    if !(14..=2048).contains(&image_size) {
        return Err(ExportError::Argument {
            field: "image-size".into(),
            reason: format!("{image_size} is outside 14..=2048"),
        });
    }
    Ok(())
}

/// The backbone alone.
pub fn backbone_model<'a>(source: impl Into<Backbone<'a>>, image_size: usize) -> Result<ModelFile> {
    check_size(image_size)?;
    let mut g = GraphBuilder::new();
    let s = Dim::Fixed(image_size);
    let x = g.input(
        PIXELS_NAME,
        DataType::Float,
        &[Dim::Named("batch"), Dim::Fixed(3), s.clone(), s],
    );
    let built = backbone::build_any(&mut g, source.into(), &x, image_size)?;
    let features = &built.features;
    g.output(
        &features.value,
        FEATURES_NAME,
        DataType::Float,
        &[Dim::Named("batch"), Dim::Fixed(features.dim)],
    );
    let alignment = hand_outputs(&mut g, &built);
    let mut model = ModelFile::new(g.finish("handmatch_backbone"));
    let id = model.model_id();
    model.metadata = vec![
        (keys::MODEL_ID.into(), id),
        (keys::BACKBONE.into(), features.description.clone()),
        (keys::INPUT_SIZE.into(), image_size.to_string()),
        ("feature_dim".into(), features.dim.to_string()),
        (
            FEATURE_LAYOUT.into(),
            backbone::features::layout_string(&features.layout),
        ),
        (
            keys::TRAINER_VERSION.into(),
            env!("CARGO_PKG_VERSION").into(),
        ),
    ];
    if let Some(a) = alignment {
        model.metadata.push((
            keys::HAND_ALIGNMENT.into(),
            serde_json::to_string(&a).expect("plain numbers serialise"),
        ));
    }
    Ok(model)
}

/// The full artefact; `training` (for heads that `fit` trained) goes into the metadata.
// Long on purpose: the graph is built in the order it runs (cast, normalise, backbone,
// head, L2, outputs, metadata), which is easier to check as one sequence than split.
pub fn artefact_model<'a>(
    source: impl Into<Backbone<'a>>,
    image_size: usize,
    head: HeadSource,
    training: Option<TrainingSummary>,
) -> Result<(ModelFile, ArtefactMetadata)> {
    check_size(image_size)?;
    let (mean, std) = (IMAGENET_MEAN, IMAGENET_STD);
    let mut g = GraphBuilder::new();
    let s = Dim::Fixed(image_size);
    let image = g.input(
        INPUT_NAME,
        DataType::Uint8,
        &[Dim::Named("batch"), s.clone(), s, Dim::Fixed(3)],
    );
    // (x/255 − mean)/std = x·(1/(255·std)) − mean/std, per channel, after NHWC → NCHW.
    let x = g.op(
        "Cast",
        &[&image],
        vec![("to", Attr::Int(DataType::Float as i64))],
    );
    let x = g.transpose(&x, &[0, 3, 1, 2]);
    let (scale, shift) = pixel_scale_shift();
    let scale = g.const_f32("norm_scale", &[1, 3, 1, 1], scale.to_vec());
    let shift = g.const_f32("norm_shift", &[1, 3, 1, 1], shift.to_vec());
    let x = g.mul(&x, &scale);
    let pixels = g.add(&x, &shift);
    let built = backbone::build_any(&mut g, source.into(), &pixels, image_size)?;
    let features = &built.features;
    let head = match head {
        HeadSource::Trained(h) => *h,
        HeadSource::Random {
            hidden,
            embedding_dim,
            seed,
        } => {
            if embedding_dim == 0 || hidden == 0 {
                return Err(ExportError::Argument {
                    field: "embedding-dim".into(),
                    reason: "must be positive".into(),
                });
            }
            MlpHead::random(features.dim, hidden, embedding_dim, seed).into()
        }
    };
    if head.input_dim() != features.dim {
        return Err(ExportError::Argument {
            field: "head".into(),
            reason: format!(
                "the head takes {}-d features but the backbone gives {}-d",
                head.input_dim(),
                features.dim
            ),
        });
    }
    let embedding = head.build(&mut g, &features.value);
    let e = head.embedding_dim();
    g.output(
        &embedding,
        OUTPUT_NAME,
        DataType::Float,
        &[Dim::Named("batch"), Dim::Fixed(e)],
    );
    let hand_alignment = hand_outputs(&mut g, &built);
    let mut model = ModelFile::new(g.finish("handmatch_artefact"));
    let metadata = ArtefactMetadata {
        model_id: model.model_id(),
        backbone: features.description.clone(),
        input_size: image_size as u32,
        resize_short_side: ArtefactMetadata::resize_for(image_size as u32),
        mean,
        std,
        embedding_dim: e,
        created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        trainer_version: env!("CARGO_PKG_VERSION").into(),
        training,
        decode: default_decode(hand_alignment.is_some()),
        hand_alignment,
        precision: Precision::Fp32,
    };
    model.metadata = metadata.to_props();
    Ok((model, metadata))
}
