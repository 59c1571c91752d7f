use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum PlotError {
    #[error("chart {title:?} has no data points to plot")]
    NoData { title: String },
    #[error("series {series:?} of chart {title:?} contains a non-finite value")]
    NonFiniteValue { title: String, series: String },
    #[error("histogram {title:?} needs at least one bin")]
    ZeroBins { title: String },
    #[error("the embedded DejaVu Sans font was rejected by the font rasteriser")]
    FontRegistration,
    #[error("drawing chart {title:?}: {message}")]
    Drawing { title: String, message: String },
    #[error("encoding PNG {path}: {source}")]
    Encode {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
