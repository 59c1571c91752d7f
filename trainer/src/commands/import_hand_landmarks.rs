//! `handmatch-train import-hand-landmarks`: runs scripts/hand-landmarks/import.sh, which
//! fetches MediaPipe's hand landmark model from PyPI and converts it to ONNX in a
//! throw-away Python environment.

use anyhow::Context;

pub fn run() -> anyhow::Result<()> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/hand-landmarks/import.sh"
    );
    let status = std::process::Command::new("bash")
        .arg(script)
        .status()
        .with_context(|| format!("running {script}"))?;
    anyhow::ensure!(status.success(), "{script} failed ({status})");
    Ok(())
}
