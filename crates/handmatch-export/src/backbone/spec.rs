//! Which backbone a command uses, as paths (what the command line and `FitJob` carry), and
//! the opened models behind it.

use std::path::PathBuf;

use super::hand::HandModel;
use super::hand_features::HandFeatureSet;
use super::source::{Backbone, BackboneRef};
use super::tta::Tta;
use crate::checkpoint::Checkpoint;
use crate::error::{ExportError, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct BackboneSpec {
    /// A Hugging Face checkpoint folder (DINOv2 or ResNet).
    pub hf_dir: Option<PathBuf>,
    /// The imported hand landmark model.
    pub hand_model: Option<PathBuf>,
    /// The feature groups the hand model emits.
    pub hand_features: HandFeatureSet,
    /// A fine-tuned copy of the hand model whose trunk the features read (alignment keeps
    /// the original weights).
    pub hand_trunk: Option<PathBuf>,
    /// Another version of the hand model (an int8 one, say) that computes every feature;
    /// alignment and the artefact's `presence` and `landmarks` keep the original.
    pub hand_embedding: Option<PathBuf>,
    /// Test-time views the features are averaged over.
    pub tta: Tta,
}

pub struct OpenBackbone {
    checkpoint: Option<Checkpoint>,
    hand: Option<HandModel>,
    tta: Tta,
}

impl BackboneSpec {
    pub fn checkpoint(hf_dir: impl Into<PathBuf>) -> Self {
        Self {
            hf_dir: Some(hf_dir.into()),
            hand_model: None,
            hand_features: HandFeatureSet::default(),
            hand_trunk: None,
            hand_embedding: None,
            tta: Tta::none(),
        }
    }

    pub fn hand(hand_model: impl Into<PathBuf>) -> Self {
        Self {
            hf_dir: None,
            hand_model: Some(hand_model.into()),
            hand_features: HandFeatureSet::default(),
            hand_trunk: None,
            hand_embedding: None,
            tta: Tta::none(),
        }
    }

    /// From `--backbone NAME`: `checkpoint` (the default), `hand-landmarks`, or
    /// `dinov2+hand-landmarks` / `resnet+hand-landmarks` / `checkpoint+hand-landmarks`.
    pub fn parse(
        name: &str,
        hf_dir: Option<PathBuf>,
        hand_model: PathBuf,
    ) -> std::result::Result<Self, String> {
        let (first, hand) = match name.split_once('+') {
            Some((first, "hand-landmarks")) => (Some(first), true),
            None if name == "hand-landmarks" => (None, true),
            None => (Some(name), false),
            Some(_) => return Err(format!("unknown backbone `{name}`")),
        };
        if let Some(first) = first {
            if !["checkpoint", "dinov2", "resnet"].contains(&first) {
                return Err(format!(
                    "unknown backbone `{first}` (expected checkpoint, dinov2, resnet or hand-landmarks)"
                ));
            }
            if hf_dir.is_none() {
                return Err(format!("--backbone {name} needs --hf-dir"));
            }
        }
        Ok(Self {
            hf_dir: first.and(hf_dir),
            hand_model: hand.then_some(hand_model),
            hand_features: HandFeatureSet::default(),
            hand_trunk: None,
            hand_embedding: None,
            tta: Tta::none(),
        })
    }

    pub fn open(&self) -> Result<OpenBackbone> {
        if self.hf_dir.is_none() && self.hand_model.is_none() {
            return Err(ExportError::Argument {
                field: "backbone".into(),
                reason: "neither a checkpoint nor the hand model".into(),
            });
        }
        Ok(OpenBackbone {
            checkpoint: self.hf_dir.as_deref().map(Checkpoint::open).transpose()?,
            hand: self
                .hand_model
                .as_deref()
                .map(|p| self.open_hand(p))
                .transpose()?,
            tta: self.tta.clone(),
        })
    }
}

impl BackboneSpec {
    fn open_hand(&self, path: &std::path::Path) -> Result<HandModel> {
        let hand = HandModel::open(path)?.with_features(self.hand_features.clone());
        match (&self.hand_trunk, &self.hand_embedding) {
            (Some(_), Some(_)) => Err(ExportError::Argument {
                field: "hand-embedding-model".into(),
                reason: "a fine-tuned trunk and another embedding network cannot be combined"
                    .into(),
            }),
            (Some(trunk), None) => hand.with_trunk(trunk),
            (None, Some(network)) => hand.with_embedding_network(network),
            (None, None) => Ok(hand),
        }
    }
}

impl OpenBackbone {
    pub fn as_ref(&self) -> Backbone<'_> {
        let source = match (&self.checkpoint, &self.hand) {
            (Some(c), None) => BackboneRef::Checkpoint(c),
            (None, Some(h)) => BackboneRef::Hand(h),
            (Some(c), Some(h)) => BackboneRef::Combined(c, h),
            (None, None) => unreachable!("`open` refuses an empty spec"),
        };
        Backbone {
            source,
            tta: &self.tta,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_bad_ones_say_why() {
        let hf = Some(PathBuf::from("ckpt"));
        let hand = PathBuf::from("hand.onnx");
        let s = BackboneSpec::parse("dinov2+hand-landmarks", hf.clone(), hand.clone()).unwrap();
        assert_eq!(s.hf_dir, hf);
        assert_eq!(s.hand_model, Some(hand.clone()));
        let s = BackboneSpec::parse("hand-landmarks", hf.clone(), hand.clone()).unwrap();
        assert_eq!((s.hf_dir, s.hand_model), (None, Some(hand.clone())));
        let s = BackboneSpec::parse("checkpoint", hf.clone(), hand.clone()).unwrap();
        assert_eq!((s.hf_dir, s.hand_model), (hf.clone(), None));
        let e = BackboneSpec::parse("dinov2", None, hand.clone()).unwrap_err();
        assert!(e.contains("--hf-dir"), "{e}");
        let e = BackboneSpec::parse("vit+hand-landmarks", hf, hand).unwrap_err();
        assert!(e.contains("unknown backbone `vit`"), "{e}");
    }
}
