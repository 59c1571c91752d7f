//! The artefact's contract: what `model.onnx` records in its `metadata_props` so that the
//! server, the trainer and the evaluation client all preprocess and label it the same way.

use std::collections::HashMap;

use super::decode::DecodeMode;
use crate::hand::align::AlignmentSpec;
use crate::training_summary::TrainingSummary;

/// Keys of the ONNX `metadata_props`.
pub mod keys {
    pub const FORMAT: &str = "handmatch.format";
    pub const MODEL_ID: &str = "model_id";
    pub const BACKBONE: &str = "backbone";
    pub const INPUT_SIZE: &str = "input_size";
    pub const RESIZE_SHORT_SIDE: &str = "resize_short_side";
    pub const MEAN: &str = "mean";
    pub const STD: &str = "std";
    pub const EMBEDDING_DIM: &str = "embedding_dim";
    pub const CREATED_AT: &str = "created_at";
    pub const TRAINER_VERSION: &str = "trainer_version";
    /// JSON `TrainingSummary`; present only for heads trained by `handmatch-train fit`.
    pub const TRAINING: &str = "training";
    /// JSON `AlignmentSpec`; present only for models that align hands before embedding.
    pub const HAND_ALIGNMENT: &str = "hand_alignment";
    /// `fp32`, `int8` (dynamically quantised MatMuls) or `fp16` (backbone in fp16, for GPU
    /// providers); absent in older artefacts: fp32.
    pub const PRECISION: &str = "precision";
    /// `full` or `dct-scaled` (JPEGs decoded at a reduced scale in the DCT domain); absent
    /// in older artefacts: full, which is what they were trained and served with.
    pub const DECODE: &str = "decode";
    /// JSON: how an int8 or fp16 artefact was made and what its quality gate measured.
    pub const QUANTIZATION: &str = "quantization";
}

/// The arithmetic an artefact's large matrix products run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    /// int8 weights (per output channel), activations quantised at run time.
    Int8,
    /// The backbone's weights and activations in fp16, the head in fp32.
    Fp16,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Int8 => "int8",
            Self::Fp16 => "fp16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fp32" => Ok(Self::Fp32),
            "int8" => Ok(Self::Int8),
            "fp16" => Ok(Self::Fp16),
            other => Err(format!("unknown precision `{other}` (fp32, int8 or fp16)")),
        }
    }
}

/// The artefact format this build reads and writes.
pub const FORMAT_VERSION: &str = "1";
/// ImageNet statistics, which both DINOv2 and ResNet were trained with.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// `(x/255 − mean)/std` as `x · scale + shift` per channel, in f32: how the artefact's graph
/// normalises its uint8 input, and how the trainer makes the backbone graph's input, so both
/// see bit-identical pixels (features with thresholds inside, such as the hand silhouette,
/// would otherwise flip on the last bit).
pub fn pixel_scale_shift() -> ([f32; 3], [f32; 3]) {
    let (m, s) = (IMAGENET_MEAN, IMAGENET_STD);
    (
        [0, 1, 2].map(|c| 1.0 / (255.0 * s[c])),
        [0, 1, 2].map(|c| -m[c] / s[c]),
    )
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArtefactMetadata {
    pub model_id: String,
    pub backbone: String,
    /// The graph's fixed square input side, S.
    pub input_size: u32,
    /// The evaluation transform resizes the short side to this, then centre-crops S.
    pub resize_short_side: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub embedding_dim: usize,
    pub created_at: String,
    pub trainer_version: String,
    /// How the head was trained; `None` for random heads.
    pub training: Option<TrainingSummary>,
    /// `Some`: the input is the hand aligned by the landmark model (the graph's `presence`
    /// and `landmarks` outputs), not the centre crop.
    pub hand_alignment: Option<AlignmentSpec>,
    pub precision: Precision,
    /// How images are decoded for this model (server, trainer and evaluation alike).
    pub decode: DecodeMode,
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("model metadata: `{key}` is missing (not a handmatch artefact?)")]
    Missing { key: &'static str },
    #[error("model metadata: `{key}` = {value:?}: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
}

impl ArtefactMetadata {
    /// The evaluation transform's resize for an input side `s`: 256 for 224, as in the
    /// reference study, scaled for other sizes.
    pub fn resize_for(input_size: u32) -> u32 {
        (input_size as f64 * 256.0 / 224.0).round() as u32
    }

    pub fn to_props(&self) -> Vec<(String, String)> {
        let list = |v: &[f32; 3]| v.map(|x| x.to_string()).join(",");
        vec![
            (keys::FORMAT.into(), FORMAT_VERSION.into()),
            (keys::MODEL_ID.into(), self.model_id.clone()),
            (keys::BACKBONE.into(), self.backbone.clone()),
            (keys::INPUT_SIZE.into(), self.input_size.to_string()),
            (
                keys::RESIZE_SHORT_SIDE.into(),
                self.resize_short_side.to_string(),
            ),
            (keys::MEAN.into(), list(&self.mean)),
            (keys::STD.into(), list(&self.std)),
            (keys::EMBEDDING_DIM.into(), self.embedding_dim.to_string()),
            (keys::CREATED_AT.into(), self.created_at.clone()),
            (keys::TRAINER_VERSION.into(), self.trainer_version.clone()),
            (keys::PRECISION.into(), self.precision.as_str().into()),
            (keys::DECODE.into(), self.decode.as_str().into()),
        ]
        .into_iter()
        .chain(
            self.training
                .as_ref()
                .map(|t| (keys::TRAINING.into(), t.to_json())),
        )
        .chain(self.hand_alignment.map(|a| {
            (
                keys::HAND_ALIGNMENT.into(),
                serde_json::to_string(&a).expect("plain numbers serialise"),
            )
        }))
        .collect()
    }

    pub fn from_props(props: &HashMap<String, String>) -> Result<Self, MetadataError> {
        let get = |key: &'static str| {
            props
                .get(key)
                .cloned()
                .ok_or(MetadataError::Missing { key })
        };
        let invalid = |key: &'static str, value: &str, reason: String| MetadataError::Invalid {
            key,
            value: value.to_string(),
            reason,
        };
        let format = get(keys::FORMAT)?;
        if format != FORMAT_VERSION {
            return Err(invalid(
                keys::FORMAT,
                &format,
                format!("this build reads format {FORMAT_VERSION}"),
            ));
        }
        let number = |key: &'static str| -> Result<u64, MetadataError> {
            let v = get(key)?;
            v.parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid(key, &v, "expected a positive integer".into()))
        };
        let triple = |key: &'static str| -> Result<[f32; 3], MetadataError> {
            let v = get(key)?;
            let parts: Vec<f32> = v
                .split(',')
                .map(|p| p.trim().parse::<f32>())
                .collect::<Result<_, _>>()
                .map_err(|e| invalid(key, &v, e.to_string()))?;
            <[f32; 3]>::try_from(parts)
                .map_err(|_| invalid(key, &v, "expected three numbers".into()))
        };
        let std = triple(keys::STD)?;
        if std.iter().any(|s| *s <= 0.0) {
            return Err(invalid(
                keys::STD,
                &get(keys::STD)?,
                "must be positive".into(),
            ));
        }
        let training = match props.get(keys::TRAINING) {
            None => None,
            Some(text) => Some(TrainingSummary::from_json(text).map_err(|e| {
                invalid(
                    keys::TRAINING,
                    text,
                    format!("the training summary does not parse: {e}"),
                )
            })?),
        };
        let hand_alignment = match props.get(keys::HAND_ALIGNMENT) {
            None => None,
            Some(text) => Some(
                serde_json::from_str(text)
                    .map_err(|e| invalid(keys::HAND_ALIGNMENT, text, e.to_string()))?,
            ),
        };
        let precision = match props.get(keys::PRECISION) {
            None => Precision::Fp32,
            Some(text) => text
                .parse()
                .map_err(|reason| invalid(keys::PRECISION, text, reason))?,
        };
        let decode = match props.get(keys::DECODE) {
            None => DecodeMode::Full,
            Some(text) => text
                .parse()
                .map_err(|reason| invalid(keys::DECODE, text, reason))?,
        };
        Ok(Self {
            model_id: get(keys::MODEL_ID)?,
            backbone: get(keys::BACKBONE)?,
            input_size: number(keys::INPUT_SIZE)? as u32,
            resize_short_side: number(keys::RESIZE_SHORT_SIDE)? as u32,
            mean: triple(keys::MEAN)?,
            std,
            embedding_dim: number(keys::EMBEDDING_DIM)? as usize,
            created_at: get(keys::CREATED_AT)?,
            trainer_version: get(keys::TRAINER_VERSION)?,
            training,
            hand_alignment,
            precision,
            decode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ArtefactMetadata {
        ArtefactMetadata {
            model_id: "abc".into(),
            backbone: "dinov2(hidden=64)".into(),
            input_size: 224,
            resize_short_side: 256,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            embedding_dim: 256,
            created_at: "2026-11-28T00:00:00Z".into(),
            trainer_version: "0.1.0".into(),
            training: None,
            hand_alignment: None,
            precision: Precision::Fp32,
            decode: DecodeMode::Full,
        }
    }

    #[test]
    fn round_trips_through_props() {
        let m = sample();
        let props: HashMap<_, _> = m.to_props().into_iter().collect();
        assert_eq!(ArtefactMetadata::from_props(&props).unwrap(), m);
        let hand = ArtefactMetadata {
            hand_alignment: Some(AlignmentSpec::default()),
            ..m
        };
        let props: HashMap<_, _> = hand.to_props().into_iter().collect();
        assert_eq!(ArtefactMetadata::from_props(&props).unwrap(), hand);
        let int8 = ArtefactMetadata {
            precision: Precision::Int8,
            decode: DecodeMode::DctScaled,
            ..hand
        };
        let props: HashMap<_, _> = int8.to_props().into_iter().collect();
        assert_eq!(ArtefactMetadata::from_props(&props).unwrap(), int8);
    }

    /// Artefacts written before these keys existed ran fp32 on fully decoded images.
    #[test]
    fn older_artefacts_without_precision_or_decode_read_as_fp32_full() {
        let mut props: HashMap<_, _> = sample().to_props().into_iter().collect();
        props.remove(keys::PRECISION);
        props.remove(keys::DECODE);
        let m = ArtefactMetadata::from_props(&props).unwrap();
        assert_eq!((m.precision, m.decode), (Precision::Fp32, DecodeMode::Full));
        props.insert(keys::DECODE.into(), "thumbnail".into());
        let err = ArtefactMetadata::from_props(&props)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`decode`") && err.contains("thumbnail"),
            "{err}"
        );
    }

    #[test]
    fn a_training_summary_that_does_not_parse_is_refused_by_name() {
        let mut props: HashMap<_, _> = sample().to_props().into_iter().collect();
        props.insert(keys::TRAINING.into(), r#"{"best_epoch": "five"}"#.into());
        let err = ArtefactMetadata::from_props(&props)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`training`") && err.contains("does not parse"),
            "{err}"
        );
    }

    #[test]
    fn names_the_bad_key() {
        let mut props: HashMap<_, _> = sample().to_props().into_iter().collect();
        props.insert(keys::STD.into(), "0.2,0.2".into());
        let err = ArtefactMetadata::from_props(&props)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`std`"), "{err}");
        props.remove(keys::MODEL_ID);
        let err = ArtefactMetadata::from_props(&props)
            .unwrap_err()
            .to_string();
        assert!(err.contains("model_id") || err.contains("std"), "{err}");
    }

    #[test]
    fn resize_matches_the_reference_transform() {
        assert_eq!(ArtefactMetadata::resize_for(224), 256);
        assert_eq!(ArtefactMetadata::resize_for(448), 512);
    }
}
