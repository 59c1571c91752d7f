//! Errors of artefact building: each names the file, tensor or field at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: not a readable safetensors file: {reason}")]
    Safetensors { path: PathBuf, reason: String },
    #[error("checkpoint {dir}: tensor `{name}` is missing")]
    MissingTensor { dir: PathBuf, name: String },
    #[error("checkpoint {dir}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    TensorShape {
        dir: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("checkpoint {dir}: tensor `{name}` has dtype {dtype}, expected a float type (F32, F16, BF16 or F64)")]
    TensorDtype {
        dir: PathBuf,
        name: String,
        dtype: String,
    },
    #[error("{path}: unsupported model_type `{found}` (supported: dinov2, resnet)")]
    UnsupportedModelType { path: PathBuf, found: String },
    #[error("{path}: field `{field}`: {reason}")]
    Config {
        path: PathBuf,
        field: String,
        reason: String,
    },
    #[error("image size {size} is not a multiple of the checkpoint's patch_size {patch}")]
    ImageSize { size: usize, patch: usize },
    #[error("invalid argument `{field}`: {reason}")]
    Argument { field: String, reason: String },
    #[error("{path}: {reason}")]
    Runtime { path: PathBuf, reason: String },
    #[error(
        "the {precision} artefact failed its quality gate: the cosine between {precision} and \
         fp32 embeddings is {worst_cosine:.4} on {image}, under {min_cosine} \
         (worst of {images} calibration images); the artefact was not written"
    )]
    QualityGate {
        precision: &'static str,
        worst_cosine: f32,
        image: String,
        min_cosine: f32,
        images: usize,
    },
}

pub type Result<T, E = ExportError> = std::result::Result<T, E>;

impl ExportError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ExportError {
        let path = path.into();
        move |source| ExportError::Io { path, source }
    }
}
