use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum MetricsError {
    #[error("gallery has {labels} labels but {vectors} vectors")]
    GalleryLengthMismatch { labels: usize, vectors: usize },
    #[error("no gallery item has the query's label {label:?}")]
    TrueLabelAbsent { label: String },
    #[error("vector of length {found} where {expected} was expected")]
    DimensionMismatch { expected: usize, found: usize },
    #[error("{ranks} ranks but {aps} average precisions")]
    RanksApsMismatch { ranks: usize, aps: usize },
    #[error("{correct} correct-item counts for {ranks} ranks")]
    CorrectCountsMismatch { ranks: usize, correct: usize },
    #[error("no queries to summarise")]
    NoQueries,
    #[error("rank {rank} outside 1..={gallery_size}")]
    RankOutOfRange { rank: usize, gallery_size: usize },
    #[error("{correct} correct items in a gallery of {gallery_size}: need 1..=gallery size")]
    CorrectCountOutOfRange { correct: usize, gallery_size: usize },
    #[error("embedding of subject {subject:?} has length {found}, others have {expected}")]
    EmbeddingDimension {
        subject: String,
        expected: usize,
        found: usize,
    },
    #[error("protocol {protocol}: no subject has both dorsal and palmar images")]
    NoEligibleSubjects { protocol: &'static str },
}
