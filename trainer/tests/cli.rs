//! The `handmatch-train` command line end to end: random checkpoint → artefact, and
//! failing exports that name the problem, exit non-zero and write nothing.

mod common;

use std::process::Command;

fn train() -> Command {
    Command::new(env!("CARGO_BIN_EXE_handmatch-train"))
}

#[test]
fn init_random_then_export_writes_a_loadable_artefact() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("ckpt");
    let out = train()
        .args([
            "init-random",
            "--arch",
            "resnet-tiny",
            "--seed",
            "3",
            "--out",
        ])
        .arg(&ckpt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model = tmp.path().join("model.onnx");
    let out = train()
        .args([
            "export",
            "--image-size",
            "64",
            "--random-head",
            "--embedding-dim",
            "32",
            "--hf-dir",
        ])
        .arg(&ckpt)
        .arg("--out")
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("64px → 32-d"), "{stdout}");
    let session = handmatch_core::embed::EmbeddingSession::open(
        &model,
        &handmatch_core::embed::RuntimeOptions::default(),
    )
    .unwrap();
    assert_eq!(session.metadata().embedding_dim, 32);
}

#[test]
fn failing_export_names_the_problem_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("ckpt");
    assert!(train()
        .args(["init-random", "--arch", "dinov2-tiny", "--out"])
        .arg(&ckpt)
        .status()
        .unwrap()
        .success());
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = train()
        .args(["export-backbone", "--image-size", "100", "--hf-dir"])
        .arg(&ckpt)
        .arg("--out")
        .arg(out_dir.join("backbone.onnx"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("100 is not a multiple of the checkpoint's patch_size 14"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0);
}

/// `export` of a hand-landmarks artefact with a random head and `precision` (the flag and
/// its value): it must fail and write nothing; returns its stderr.
fn refused_hand_export(precision: [&str; 2]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out = train()
        .args([
            "export",
            "--backbone",
            "hand-landmarks",
            "--image-size",
            "224",
            "--random-head",
            precision[0],
            precision[1],
            "--hand-model",
        ])
        .arg(common::hand_model())
        .arg("--out")
        .arg(tmp.path().join("model.onnx"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn int8_export_of_an_artefact_with_nothing_to_quantise_is_refused() {
    // A hand-landmarks artefact's only matrix products are its head's, which stay fp32,
    // and convolutions are not quantised: an "int8" artefact would be fp32 under a label.
    let stderr = refused_hand_export(["--quantize", "int8"]);
    assert!(
        stderr.contains("no matrix product to quantise (2 in its head"),
        "{stderr}"
    );
}

#[test]
fn fp16_export_writes_a_gated_fp16_artefact() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("ckpt");
    let out = train()
        .args(["init-random", "--arch", "dinov2-tiny", "--out"])
        .arg(&ckpt)
        .output()
        .unwrap();
    assert!(out.status.success());
    let model = tmp.path().join("model.onnx");
    let out = train()
        .args([
            "export",
            "--image-size",
            "56",
            "--random-head",
            "--precision",
            "fp16",
            "--hf-dir",
        ])
        .arg(&ckpt)
        .arg("--out")
        .arg(&model)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("fp16: ") && stderr.contains("cosine to fp32 over 16 calibration images"),
        "{stderr}"
    );
    let session = handmatch_core::embed::EmbeddingSession::open(
        &model,
        &handmatch_core::embed::RuntimeOptions::default(),
    )
    .unwrap();
    assert_eq!(session.metadata().precision.as_str(), "fp16");
}

#[test]
fn fp16_export_of_a_hand_artefact_is_refused_naming_the_operator() {
    // The spliced landmark network and the feature sampling use operators (Clip,
    // GridSample, TopK, …) that the conversion does not claim to handle.
    let stderr = refused_hand_export(["--precision", "fp16"]);
    assert!(
        stderr.contains("fp16: operator ") && stderr.contains("this artefact stays fp32"),
        "{stderr}"
    );
}
