//! Synthetic hands (being written).
