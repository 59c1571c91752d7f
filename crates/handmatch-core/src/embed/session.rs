//! `EmbeddingSession`: one artefact (`model.onnx`) loaded into ONNX Runtime, mapping a batch
//! of preprocessed uint8 RGB crops to L2-normalised embeddings.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use image::RgbImage;
use ndarray::{Array2, Array4, ArrayView4};
use ort::session::{OutputSelector, RunOptions, Session};
use ort::value::TensorRef;

use crate::hand::landmarks::detections_from;
use crate::hand::{AlignError, HandAligner, HandDetection, HandDetector, LANDMARK_INPUT};

use super::metadata::{ArtefactMetadata, MetadataError, Precision};
use super::output_graph::graph_for_outputs;
use super::runtime::{
    open_model, open_shared_session, ExecutionProviderKind, ModelSource, RuntimeError,
    RuntimeOptions, SessionSharing,
};

pub const INPUT_NAME: &str = "image";
pub const OUTPUT_NAME: &str = "embedding";
/// Hand models also report what the landmark model saw in the input crop.
pub const PRESENCE_NAME: &str = "presence";
pub const LANDMARKS_NAME: &str = "landmarks";

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{path}: {source}")]
    Metadata {
        path: PathBuf,
        #[source]
        source: MetadataError,
    },
    #[error("{path}: not a handmatch artefact: {reason}")]
    Artefact { path: PathBuf, reason: String },
    #[error("input batch has shape {found:?}, expected [N, {size}, {size}, 3]")]
    InputShape { found: Vec<usize>, size: u32 },
    #[error("inference failed: {0}")]
    Inference(#[from] ort::Error),
    #[error("the embedding worker panicked: {0}")]
    Panicked(String),
    /// A request's image without a hand; `index` is its position in the request.
    #[error("images[{index}]: {source}")]
    NoHand {
        index: usize,
        #[source]
        source: AlignError,
    },
}

pub struct EmbeddingSession {
    session: Session,
    /// Hand models: the graph of the `presence` and `landmarks` outputs alone, which
    /// alignment runs (see `output_graph`).
    detector: Option<Session>,
    metadata: ArtefactMetadata,
    provider: ExecutionProviderKind,
    path: PathBuf,
}

impl EmbeddingSession {
    pub fn open(path: &Path, opts: &RuntimeOptions) -> Result<Self, EmbedError> {
        Self::open_shared(path, opts, &SessionSharing::default())
    }

    /// `open` for one session of several over the same artefact (an `EmbeddingPool`).
    pub fn open_shared(
        path: &Path,
        opts: &RuntimeOptions,
        sharing: &SessionSharing,
    ) -> Result<Self, EmbedError> {
        if !path.is_file() {
            return Err(EmbedError::Artefact {
                path: path.into(),
                reason: "file not found".into(),
            });
        }
        let (mut session, provider) = open_shared_session(path, opts, sharing)?;
        let metadata = read_metadata(&session).map_err(|source| EmbedError::Metadata {
            path: path.into(),
            source,
        })?;
        let has = |list: &[ort::value::Outlet], name: &str| list.iter().any(|o| o.name() == name);
        if !has(session.inputs(), INPUT_NAME) || !has(session.outputs(), OUTPUT_NAME) {
            return Err(EmbedError::Artefact {
                path: path.into(),
                reason: format!("expected input `{INPUT_NAME}` and output `{OUTPUT_NAME}`"),
            });
        }
        if metadata.hand_alignment.is_some() {
            if !has(session.outputs(), PRESENCE_NAME) || !has(session.outputs(), LANDMARKS_NAME) {
                return Err(EmbedError::Artefact {
                    path: path.into(),
                    reason: format!(
                        "hand alignment needs the outputs `{PRESENCE_NAME}` and `{LANDMARKS_NAME}`"
                    ),
                });
            }
            if metadata.input_size != LANDMARK_INPUT {
                return Err(EmbedError::Artefact {
                    path: path.into(),
                    reason: format!(
                        "hand models take {LANDMARK_INPUT}-pixel crops, not {}",
                        metadata.input_size
                    ),
                });
            }
        }
        // Hand models align through one cut of the graph and embed through another, so a
        // separate embedding network (an int8 one) runs without the network that aligns.
        let mut detector = None;
        if metadata.hand_alignment.is_some() {
            if let Some((cut_detector, cut_main)) =
                open_hand_cuts(path, opts, sharing, OUTPUT_NAME)?
            {
                detector = Some(cut_detector);
                session = cut_main;
            }
        }
        tracing::info!(
            model_id = %metadata.model_id,
            backbone = %metadata.backbone,
            provider = %provider,
            "loaded {}",
            path.display()
        );
        Ok(Self {
            session,
            detector,
            metadata,
            provider,
            path: path.into(),
        })
    }

    pub fn metadata(&self) -> &ArtefactMetadata {
        &self.metadata
    }

    pub fn provider(&self) -> ExecutionProviderKind {
        self.provider
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The aligner, for models that align hands.
    pub fn hand_aligner(&self) -> Option<HandAligner> {
        self.metadata
            .hand_alignment
            .map(|spec| HandAligner::new(spec, self.metadata.input_size))
    }

    /// Embeds model inputs (see `preprocess::model_input`): centre crops as they are; for
    /// hand models, whole images, aligned first. An image without a hand gets its own
    /// error and takes no part in the batch.
    pub fn embed_inputs(
        &mut self,
        inputs: &[&RgbImage],
    ) -> Result<Vec<Result<Vec<f32>, AlignError>>, EmbedError> {
        let Some(aligner) = self.hand_aligner() else {
            let e = self.embed_crops(inputs)?;
            return Ok(e.rows().into_iter().map(|r| Ok(r.to_vec())).collect());
        };
        let aligned = aligner.align(self, inputs)?;
        let crops: Vec<&RgbImage> = aligned
            .iter()
            .filter_map(|a| a.as_ref().ok().map(|h| &h.crop))
            .collect();
        let mut rows = if crops.is_empty() {
            Vec::new()
        } else {
            self.embed_crops(&crops)?
                .rows()
                .into_iter()
                .map(|r| r.to_vec())
                .collect()
        }
        .into_iter();
        Ok(aligned
            .into_iter()
            .map(|a| a.map(|_| rows.next().expect("one row per aligned hand")))
            .collect())
    }

    /// Embeds preprocessed `S x S` crops as one batch; returns `[N, E]`.
    pub fn embed_crops(&mut self, crops: &[&RgbImage]) -> Result<Array2<f32>, EmbedError> {
        let batch = self.batch(crops)?;
        self.embed(batch.view())
    }

    fn batch(&self, crops: &[&RgbImage]) -> Result<Array4<u8>, EmbedError> {
        let s = self.metadata.input_size;
        let mut batch = Array4::<u8>::zeros((crops.len(), s as usize, s as usize, 3));
        for (i, crop) in crops.iter().enumerate() {
            if crop.dimensions() != (s, s) {
                return Err(EmbedError::InputShape {
                    found: vec![1, crop.height() as usize, crop.width() as usize, 3],
                    size: s,
                });
            }
            batch
                .slice_mut(ndarray::s![i, .., .., ..])
                .as_slice_mut()
                .expect("a fresh array is contiguous")
                .copy_from_slice(crop.as_raw());
        }
        Ok(batch)
    }

    /// Embeds a batch `[N, S, S, 3]` of RGB crops; returns `[N, E]`.
    pub fn embed(&mut self, images: ArrayView4<'_, u8>) -> Result<Array2<f32>, EmbedError> {
        let s = self.metadata.input_size as usize;
        let shape = images.shape();
        if shape[1] != s || shape[2] != s || shape[3] != 3 || shape[0] == 0 {
            return Err(EmbedError::InputShape {
                found: shape.to_vec(),
                size: self.metadata.input_size,
            });
        }
        let images = images.as_standard_layout();
        if self.metadata.precision != Precision::Int8 || shape[0] == 1 {
            return self.run_embedding(images.view());
        }
        // int8 artefacts quantise each activation with one scale over the whole tensor, so
        // an image's embedding would depend on the others in its batch: each runs alone.
        let mut rows = Array2::zeros((shape[0], self.metadata.embedding_dim));
        for (i, image) in images.outer_iter().enumerate() {
            let one = self.run_embedding(image.insert_axis(ndarray::Axis(0)))?;
            rows.row_mut(i).assign(&one.row(0));
        }
        Ok(rows)
    }

    fn run_embedding(&mut self, images: ArrayView4<'_, u8>) -> Result<Array2<f32>, EmbedError> {
        let n = images.shape()[0];
        // Only the embedding is fetched. ONNX Runtime still runs every node (so alignment
        // has its own cut-down graph), but copies out no other output.
        let options =
            RunOptions::new()?.with_outputs(OutputSelector::no_default().with(OUTPUT_NAME));
        let outputs = self.session.run_with_options(
            ort::inputs![INPUT_NAME => TensorRef::from_array_view(images)?],
            &options,
        )?;
        let out = outputs[OUTPUT_NAME].try_extract_array::<f32>()?;
        let e = self.metadata.embedding_dim;
        Ok(out
            .to_shape((n, e))
            .map_err(|_| EmbedError::Artefact {
                path: self.path.clone(),
                reason: format!("output has shape {:?}, expected [{n}, {e}]", out.shape()),
            })?
            .to_owned())
    }
}

/// The artefact's own landmark outputs find the hand; the embedding branch is not run.
impl HandDetector for EmbeddingSession {
    type Error = EmbedError;

    fn detect(&mut self, crops: &[&RgbImage]) -> Result<Vec<HandDetection>, EmbedError> {
        let batch = self.batch(crops)?;
        Ok(run_detection(
            self.detector.as_mut().unwrap_or(&mut self.session),
            ort::inputs![INPUT_NAME => TensorRef::from_array_view(batch.view())?],
        )?)
    }
}

/// A hand graph's two sessions over `path`, each on its own cut of the graph (read once,
/// `output_graph`): the detector (`presence` and `landmarks`) and the session of `output`
/// alone. Their threads do not spin while idle, since they take turns on the same cores
/// (measured: 15 % slower photos when one spun). `None` when the graph cannot be cut, which
/// leaves both jobs to the whole graph.
pub fn open_hand_cuts(
    path: &Path,
    opts: &RuntimeOptions,
    sharing: &SessionSharing,
    output: &str,
) -> Result<Option<(Session, Session)>, RuntimeError> {
    let failed = |reason: String| RuntimeError::GraphCut {
        path: path.into(),
        outputs: format!("{PRESENCE_NAME} and {LANDMARKS_NAME}, and to {output}"),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
    let cut =
        |outputs: &[&str]| graph_for_outputs(&bytes, outputs).map_err(|e| failed(e.to_string()));
    let (Some(detection), Some(main)) = (cut(&[PRESENCE_NAME, LANDMARKS_NAME])?, cut(&[output])?)
    else {
        return Ok(None);
    };
    let sharing = SessionSharing {
        yield_when_idle: true,
        ..*sharing
    };
    let open = |graph: &[u8]| open_model(ModelSource::Bytes(graph), opts, &sharing);
    Ok(Some((open(&detection)?.0, open(&main)?.0)))
}

/// Runs only a hand graph's `presence` and `landmarks` outputs (the artefact's or the
/// trainer's backbone graph; they differ only in their input).
pub fn run_detection<'i, 'v: 'i, const N: usize>(
    session: &mut Session,
    inputs: impl Into<ort::session::SessionInputs<'i, 'v, N>>,
) -> Result<Vec<HandDetection>, ort::Error> {
    let options = RunOptions::new()?.with_outputs(
        OutputSelector::no_default()
            .with(PRESENCE_NAME)
            .with(LANDMARKS_NAME),
    );
    let outputs = session.run_with_options(inputs, &options)?;
    let presence = outputs[PRESENCE_NAME].try_extract_array::<f32>()?;
    let landmarks = outputs[LANDMARKS_NAME].try_extract_array::<f32>()?;
    Ok(detections_from(
        &landmarks.iter().copied().collect::<Vec<_>>(),
        &presence.iter().copied().collect::<Vec<_>>(),
    ))
}

fn read_metadata(session: &Session) -> Result<ArtefactMetadata, MetadataError> {
    let meta = session.metadata().map_err(|_| MetadataError::Missing {
        key: "metadata_props",
    })?;
    let props: HashMap<String, String> = meta
        .custom_keys()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|k| meta.custom(&k).map(|v| (k, v)))
        .collect();
    ArtefactMetadata::from_props(&props)
}
