//! What can go wrong while generating a synthetic dataset.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("invalid synth option `{option}`: {reason}")]
    InvalidOption {
        option: &'static str,
        reason: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Image {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    #[error("{}: {source}", path.display())]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("{}: no images of subject {subject:?}", path.display())]
    UnknownSubject { path: PathBuf, subject: String },
}

impl SynthError {
    pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
        move |source| SynthError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
