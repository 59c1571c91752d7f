//! What several trainer test files share.

use std::path::PathBuf;

/// The real MediaPipe hand landmark model that scripts/setup.sh imports.
pub fn hand_model() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(handmatch_export::backbone::hand::DEFAULT_MODEL);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh",
        path.display()
    );
    path
}
