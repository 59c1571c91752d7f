//! Test-time views in the graph: the features are the mean of the backbone over the crop,
//! its mirror image and its two shifts (made here in Rust, independently); with the flip
//! view a crop and its mirror image get the same features; and the artefact embeds what
//! the head makes of the backbone graph's features, as the trainer extracts them.

mod common;

use common::{images, normalised};
use handmatch_core::embed::backbone_session::BackboneSession;
use handmatch_core::embed::{EmbeddingSession, RuntimeOptions};
use handmatch_export::artefact::{artefact_model, backbone_model, HeadSource};
use handmatch_export::backbone::tta::SHIFT_PIXELS;
use handmatch_export::backbone::{Backbone, BackboneRef, Tta};
use handmatch_export::checkpoint::Checkpoint;
use handmatch_export::head::{Head, MlpHead};
use handmatch_export::random_init::{self, Arch};
use ndarray::{Array2, Array4};

const S: usize = 64;

/// `out[y, x] = img[clamp(y − dy), clamp(x − dx)]`, mirrored first when asked.
fn view(img: &Array4<f32>, mirror: bool, shift: i64) -> Array4<f32> {
    let last = S as i64 - 1;
    Array4::from_shape_fn(img.dim(), |(i, c, y, x)| {
        let sy = (y as i64 - shift).clamp(0, last) as usize;
        let sx = (x as i64 - shift).clamp(0, last) as usize;
        let sx = if mirror { S - 1 - sx } else { sx };
        img[[i, c, sy, sx]]
    })
}

struct Fixture {
    _dir: tempfile::TempDir,
    ckpt: Checkpoint,
    plain: BackboneSession,
    path: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ckpt_dir = dir.path().join("ckpt");
    random_init::write(Arch::ResnetTiny, 11, &ckpt_dir).unwrap();
    let ckpt = Checkpoint::open(&ckpt_dir).unwrap();
    let path = dir.path().join("plain.onnx");
    backbone_model(&ckpt, S).unwrap().save(&path).unwrap();
    let plain = BackboneSession::open(&path, &RuntimeOptions::default()).unwrap();
    Fixture {
        path: dir.path().to_path_buf(),
        _dir: dir,
        ckpt,
        plain,
    }
}

fn with_tta<'a>(ckpt: &'a Checkpoint, tta: &'a Tta) -> Backbone<'a> {
    Backbone {
        source: BackboneRef::Checkpoint(ckpt),
        tta,
    }
}

fn tta_session(f: &Fixture, tta: &Tta) -> BackboneSession {
    let path = f.path.join(format!("tta-{tta}.onnx"));
    backbone_model(with_tta(&f.ckpt, tta), S)
        .unwrap()
        .save(&path)
        .unwrap();
    BackboneSession::open(&path, &RuntimeOptions::default()).unwrap()
}

fn assert_close(a: &Array2<f32>, b: &Array2<f32>, tol: f32, what: &str) {
    assert_eq!(a.dim(), b.dim(), "{what}");
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(
        worst <= tol * scale.max(1.0),
        "{what}: differs by {worst} (scale {scale})"
    );
}

#[test]
fn features_are_the_mean_over_the_views() {
    let mut f = fixture();
    let tta: Tta = "flip,shift".parse().unwrap();
    let mut session = tta_session(&f, &tta);
    let px = normalised(&images(3, S, 0));
    let got = session.run(px.view()).unwrap();
    let mut want = Array2::<f32>::zeros(got.dim());
    for (mirror, shift) in [
        (false, 0),
        (true, 0),
        (false, SHIFT_PIXELS),
        (false, -SHIFT_PIXELS),
    ] {
        want += &f.plain.run(view(&px, mirror, shift).view()).unwrap();
    }
    want /= 4.0;
    assert_close(&got, &want, 1e-5, "flip+shift");
    // And the views matter: the mean is not the crop's own features.
    let own = f.plain.run(px.view()).unwrap();
    assert!((&own - &got).iter().any(|d| d.abs() > 1e-3));
}

#[test]
fn with_the_flip_view_a_mirror_image_has_the_same_features() {
    let f = fixture();
    let mut session = tta_session(&f, &"flip".parse().unwrap());
    let px = normalised(&images(2, S, 0));
    let a = session.run(px.view()).unwrap();
    let b = session.run(view(&px, true, 0).view()).unwrap();
    assert_close(&a, &b, 1e-5, "mirror");
}

#[test]
fn the_artefact_embeds_what_the_head_makes_of_the_extracted_features() {
    let f = fixture();
    let tta: Tta = "flip,shift".parse().unwrap();
    let mut backbone = tta_session(&f, &tta);
    let imgs = images(3, S, 0);
    let features = backbone.run(normalised(&imgs).view()).unwrap();
    let head: Head = MlpHead::random(features.ncols(), 32, 16, 5).into();
    let want = head.forward(features.as_slice().unwrap());
    let (model, meta) = artefact_model(
        with_tta(&f.ckpt, &tta),
        S,
        HeadSource::Trained(Box::new(head)),
        None,
    )
    .unwrap();
    assert!(
        meta.backbone.ends_with("+tta(flip+shift)"),
        "{}",
        meta.backbone
    );
    let path = f.path.join("model.onnx");
    model.save(&path).unwrap();
    let mut session = EmbeddingSession::open(&path, &RuntimeOptions::default()).unwrap();
    let got = session.embed(imgs.view()).unwrap();
    let want = Array2::from_shape_vec(got.dim(), want).unwrap();
    assert_close(&got, &want, 1e-5, "artefact");
}
