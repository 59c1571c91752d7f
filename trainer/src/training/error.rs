//! How fitting a head can fail.

#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("training: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("training: {0}")]
    Sampler(#[from] crate::fit::sampler::SamplerError),
    #[error("{0}")]
    Lda(#[from] crate::lda::LdaError),
    #[error("validation: {0}")]
    Metrics(#[from] handmatch_core::metrics::MetricsError),
    #[error("{0}")]
    Data(String),
}
