//! A missing or unusable ONNX Runtime library gives one clear error that says how to
//! install it. (Own test binary: ONNX Runtime is loaded once per process.)

use std::path::Path;

use handmatch_core::embed::runtime::environment;

#[test]
fn missing_or_wrong_library_gives_one_clear_line_then_the_right_one_loads() {
    let err = environment(Some(Path::new("/nonexistent/libonnxruntime.so")))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("not found at /nonexistent/libonnxruntime.so"),
        "{err}"
    );
    assert!(
        err.contains("scripts/setup.sh") && err.contains("ORT_DYLIB_PATH"),
        "{err}"
    );
    assert!(!err.contains('\n'), "one line: {err}");

    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("libonnxruntime.so");
    std::fs::write(&garbage, b"this is not a shared library").unwrap();
    let err = environment(Some(&garbage)).err().unwrap().to_string();
    assert!(
        err.contains("cannot be used") && err.contains("scripts/setup.sh"),
        "{err}"
    );

    environment(None).expect("the library installed by scripts/setup.sh loads");
}
