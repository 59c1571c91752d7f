//! The hand feature groups' graph fragments, run through ONNX Runtime on drawn hands with
//! known landmarks: silhouette widths and bone lengths measure what was drawn and do not
//! move under rotation, scale or mirroring; landmark geometry is invariant the same way;
//! the local map is read where the landmarks are; and with every group and a test-time
//! view, the real hand network's artefact embeds what the head makes of the extracted
//! features.

use handmatch_core::embed::backbone_session::{BackboneSession, FEATURES_NAME, PIXELS_NAME};
use handmatch_core::embed::RuntimeOptions;
use handmatch_core::hand::landmarks::{LANDMARKS, PARENT};
use handmatch_export::backbone::hand::geometry;
use handmatch_export::backbone::landmark_samples::{sample_at, HandPoints};
use handmatch_export::backbone::silhouette::{self, FRACTIONS, PHALANX_TIPS, SHAPE_DIM, WIDTHS};
use handmatch_export::onnx::proto::tensor_proto::DataType;
use handmatch_export::onnx::{Dim, GraphBuilder, ModelFile};
use ndarray::{Array2, Array4};

const S: usize = 224;

/// Builds `pixel_values [1, C, H, W]` → `features` with `fragment`, runs it once.
fn run_fragment(
    input: Array4<f32>,
    fragment: impl FnOnce(&mut GraphBuilder, &str) -> String,
) -> Vec<f32> {
    let (_, c, h, w) = input.dim();
    let mut g = GraphBuilder::new();
    let x = g.input(
        PIXELS_NAME,
        DataType::Float,
        &[Dim::Fixed(1), Dim::Fixed(c), Dim::Fixed(h), Dim::Fixed(w)],
    );
    let out = fragment(&mut g, &x);
    g.output(
        &out,
        FEATURES_NAME,
        DataType::Float,
        &[Dim::Fixed(1), Dim::Named("d")],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fragment.onnx");
    ModelFile::new(g.finish("fragment")).save(&path).unwrap();
    let mut session = BackboneSession::open(&path, &RuntimeOptions::default()).unwrap();
    session.run(input.view()).unwrap().row(0).to_vec()
}

/// A drawn right hand, fingers up: landmarks in crop pixels and each finger bone's width.
struct DrawnHand {
    points: [[f32; 2]; LANDMARKS],
    /// Width of the bone ending at landmark `i` (0 for the wrist and palm bones).
    widths: [f32; LANDMARKS],
}

fn drawn_hand() -> DrawnHand {
    let mut points = [[0.0f32; 2]; LANDMARKS];
    points[0] = [112.0, 196.0];
    // Thumb: CMC, MCP, IP, tip, out to the left.
    for (i, p) in [[86.0, 176.0], [70.0, 156.0], [60.0, 138.0], [54.0, 122.0]]
        .into_iter()
        .enumerate()
    {
        points[1 + i] = p;
    }
    let knuckles = [
        [90.0, 122.0],
        [110.0, 118.0],
        [129.0, 120.0],
        [146.0, 127.0],
    ];
    let bones = [
        [26.0, 18.0, 16.0],
        [29.0, 20.0, 17.0],
        [27.0, 19.0, 16.0],
        [21.0, 15.0, 14.0],
    ];
    let tilt = [-0.12f32, -0.03, 0.05, 0.14];
    let mut widths = [0.0f32; LANDMARKS];
    let finger_widths = [13.0, 14.0, 13.0, 11.0];
    for f in 0..4 {
        let base = 5 + 4 * f;
        points[base] = knuckles[f];
        let dir = [tilt[f].sin(), -tilt[f].cos()];
        for j in 0..3 {
            let prev = points[base + j];
            let l = bones[f][j];
            points[base + j + 1] = [prev[0] + l * dir[0], prev[1] + l * dir[1]];
            widths[base + j + 1] = finger_widths[f] - j as f32;
        }
    }
    for (i, w) in [(2, 15.0), (3, 14.0), (4, 13.0)] {
        widths[i] = w;
    }
    DrawnHand { points, widths }
}

/// Distance from `p` to the segment `a`–`b`.
fn to_segment(p: [f32; 2], a: [f32; 2], b: [f32; 2]) -> f32 {
    let d = [b[0] - a[0], b[1] - a[1]];
    let t = ((p[0] - a[0]) * d[0] + (p[1] - a[1]) * d[1]) / (d[0] * d[0] + d[1] * d[1]);
    let t = t.clamp(0.0, 1.0);
    let q = [a[0] + t * d[0] - p[0], a[1] + t * d[1] - p[1]];
    (q[0] * q[0] + q[1] * q[1]).sqrt()
}

/// Whether canonical point `p` is on the hand: finger bones as capsules of their width,
/// the palm as the polygon wrist – thumb base – knuckles.
fn on_hand(hand: &DrawnHand, p: [f32; 2]) -> bool {
    for tip in PHALANX_TIPS {
        let (a, b) = (hand.points[PARENT[tip]], hand.points[tip]);
        if to_segment(p, a, b) <= hand.widths[tip] / 2.0 {
            return true;
        }
    }
    let palm = [
        [100.0, 200.0],
        [84.0, 172.0],
        hand.points[5],
        hand.points[9],
        hand.points[13],
        hand.points[17],
        [138.0, 196.0],
    ];
    inside(&palm, p)
}

fn inside(poly: &[[f32; 2]], p: [f32; 2]) -> bool {
    let mut c = false;
    let mut j = poly.len() - 1;
    for i in 0..poly.len() {
        let (a, b) = (poly[i], poly[j]);
        if (a[1] > p[1]) != (b[1] > p[1])
            && p[0] < (b[0] - a[0]) * (p[1] - a[1]) / (b[1] - a[1]) + a[0]
        {
            c = !c;
        }
        j = i;
    }
    c
}

/// A similarity of the crop about its centre: rotation, scale, optional mirror.
#[derive(Clone, Copy)]
struct Pose {
    degrees: f32,
    scale: f32,
    mirror: bool,
}

impl Pose {
    const IDENTITY: Pose = Pose {
        degrees: 0.0,
        scale: 1.0,
        mirror: false,
    };

    fn apply(self, p: [f32; 2]) -> [f32; 2] {
        let c = S as f32 / 2.0;
        let (x, y) = (p[0] - c, p[1] - c);
        let x = if self.mirror { -x } else { x };
        let (s, co) = self.degrees.to_radians().sin_cos();
        [
            c + self.scale * (co * x - s * y),
            c + self.scale * (s * x + co * y),
        ]
    }

    fn invert(self, p: [f32; 2]) -> [f32; 2] {
        let c = S as f32 / 2.0;
        let (x, y) = ((p[0] - c) / self.scale, (p[1] - c) / self.scale);
        let (s, co) = (-self.degrees).to_radians().sin_cos();
        let (x, y) = (co * x - s * y, s * x + co * y);
        let x = if self.mirror { -x } else { x };
        [c + x, c + y]
    }
}

/// The drawn hand seen in `pose`: RGB in [0, 1] (near-white background) and its
/// landmarks as the model's `[1, 63]` output.
fn render(hand: &DrawnHand, pose: Pose) -> (Array4<f32>, Vec<f32>) {
    let skin = [0.72, 0.5, 0.41];
    let background = [0.96, 0.95, 0.94];
    let img = Array4::from_shape_fn((1, 3, S, S), |(_, c, y, x)| {
        let p = pose.invert([x as f32 + 0.5, y as f32 + 0.5]);
        if on_hand(hand, p) {
            skin[c]
        } else {
            background[c]
        }
    });
    let landmarks = hand
        .points
        .iter()
        .flat_map(|&p| {
            let q = pose.apply(p);
            [q[0], q[1], 0.0]
        })
        .collect();
    (img, landmarks)
}

fn shape_of(hand: &DrawnHand, pose: Pose) -> Vec<f32> {
    let (img, landmarks) = render(hand, pose);
    run_fragment(img, |g, x| {
        let lm = g.const_f32("landmarks", &[1, 63], landmarks);
        silhouette::shape(g, x, &lm, S)
    })
}

fn palm_width(hand: &DrawnHand) -> f32 {
    let (a, b) = (hand.points[5], hand.points[17]);
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// One step of the width search, in palm widths.
const STEP: f32 = 0.5 / 24.0;

#[test]
fn silhouette_widths_and_bone_lengths_measure_the_drawn_hand() {
    let hand = drawn_hand();
    let f = shape_of(&hand, Pose::IDENTITY);
    assert_eq!(f.len(), SHAPE_DIM);
    let palm = palm_width(&hand);
    for (b, &tip) in PHALANX_TIPS.iter().enumerate() {
        // The base of the thumb and of each finger runs into the palm or the web.
        if tip == 2 || [6, 10, 14, 18].contains(&tip) {
            continue;
        }
        for (k, t) in FRACTIONS.iter().enumerate() {
            let got = f[b * FRACTIONS.len() + k];
            let want = hand.widths[tip] / palm;
            assert!(
                (got - want).abs() <= 2.0 * STEP,
                "bone to {tip} at {t}: width {got:.4} palm widths, drawn {want:.4}"
            );
        }
    }
    for child in 1..LANDMARKS {
        let (a, c) = (hand.points[PARENT[child]], hand.points[child]);
        let want = ((a[0] - c[0]).powi(2) + (a[1] - c[1]).powi(2)).sqrt() / palm;
        let got = f[WIDTHS + child - 1];
        assert!(
            (got - want).abs() < 1e-4,
            "bone to {child}: {got} vs {want}"
        );
    }
}

#[test]
fn silhouette_features_do_not_change_with_rotation_scale_or_mirror() {
    let hand = drawn_hand();
    let base = shape_of(&hand, Pose::IDENTITY);
    for pose in [
        Pose {
            degrees: 37.0,
            scale: 1.0,
            mirror: false,
        },
        Pose {
            degrees: -120.0,
            scale: 0.8,
            mirror: false,
        },
        Pose {
            degrees: 0.0,
            scale: 1.0,
            mirror: true,
        },
        Pose {
            degrees: 200.0,
            scale: 0.9,
            mirror: true,
        },
    ] {
        let f = shape_of(&hand, pose);
        let what = format!(
            "at {} degrees, scale {}, mirror {}",
            pose.degrees, pose.scale, pose.mirror
        );
        // Each silhouette edge may land one pixel (1/40 palm width at scale 0.8) and one
        // search step either way; over all 45 widths that noise averages out, a missing
        // normalisation (20 % at scale 0.8, about 0.05) would not.
        let pixel = 1.0 / (palm_width(&hand) * pose.scale);
        let moved: Vec<f32> = base.iter().zip(&f).map(|(a, b)| (a - b).abs()).collect();
        let mean = moved[..WIDTHS].iter().sum::<f32>() / WIDTHS as f32;
        let worst = moved[..WIDTHS].iter().fold(0.0f32, |a, &b| a.max(b));
        eprintln!("{what}: widths moved by {mean:.4} on average, {worst:.4} at most");
        assert!(
            worst <= 2.0 * (pixel + STEP),
            "a width moved by {worst:.4} {what}"
        );
        assert!(mean <= 0.02, "widths moved by {mean:.4} on average {what}");
        for (i, m) in moved.iter().enumerate().skip(WIDTHS) {
            assert!(*m < 1e-3, "length {i} moved by {m} {what}");
        }
    }
}

#[test]
fn a_point_off_the_silhouette_measures_zero_width() {
    let hand = drawn_hand();
    let (img, mut landmarks) = render(&hand, Pose::IDENTITY);
    // Move the index fingertip far into the background: its distal bone now crosses
    // empty space at 70 %.
    landmarks[8 * 3] = 10.0;
    landmarks[8 * 3 + 1] = 10.0;
    let f = run_fragment(img, |g, x| {
        let lm = g.const_f32("landmarks", &[1, 63], landmarks);
        silhouette::shape(g, x, &lm, S)
    });
    let b = PHALANX_TIPS.iter().position(|&t| t == 8).unwrap();
    assert_eq!(f[b * FRACTIONS.len() + 2], 0.0);
}

fn geometry_of(world: &[[f32; 3]; LANDMARKS]) -> Vec<f32> {
    let flat: Vec<f32> = world.iter().flatten().copied().collect();
    run_fragment(Array4::zeros((1, 1, 1, 1)), |g, _| {
        let w = g.const_f32("world", &[1, 63], flat);
        geometry(g, &w)
    })
}

#[test]
fn landmark_geometry_is_invariant_to_rotation_scale_and_mirror() {
    let hand = drawn_hand();
    let world: [[f32; 3]; LANDMARKS] = std::array::from_fn(|i| {
        [
            hand.points[i][0] / 1000.0,
            hand.points[i][1] / 1000.0,
            (i as f32) * 1e-3,
        ]
    });
    let base = geometry_of(&world);
    let (s, c) = 0.7f32.sin_cos();
    let turned: [[f32; 3]; LANDMARKS] = std::array::from_fn(|i| {
        let [x, y, z] = world[i];
        [2.5 * (c * x - s * z), 2.5 * y, 2.5 * (s * x + c * z)]
    });
    let mirrored: [[f32; 3]; LANDMARKS] = std::array::from_fn(|i| {
        let [x, y, z] = world[i];
        [-x, y, z]
    });
    for other in [turned, mirrored] {
        let f = geometry_of(&other);
        let worst = base
            .iter()
            .zip(&f)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "geometry moved by {worst}");
    }
}

#[test]
fn local_features_read_the_map_at_the_landmarks() {
    // A map linear in position: bilinear sampling returns the value at the exact point.
    let (c, n) = (2usize, 14usize);
    let map = Array4::from_shape_fn((1, c, n, n), |(_, ch, y, x)| {
        (ch as f32 + 1.0) * (x as f32 + 100.0 * y as f32)
    });
    let hand = drawn_hand();
    let landmarks: Vec<f32> = hand.points.iter().flat_map(|p| [p[0], p[1], 0.0]).collect();
    let got = run_fragment(map, |g, x| {
        let lm = g.const_f32("landmarks", &[1, 63], landmarks);
        sample_at(g, x, &lm, HandPoints::Landmarks, S)
    });
    let got = Array2::from_shape_vec((c, LANDMARKS), got).unwrap();
    for (i, p) in hand.points.iter().enumerate() {
        // Cell j covers crop pixels [16 j, 16 j + 16); its value sits at its centre.
        let (mx, my) = (p[0] / 16.0 - 0.5, p[1] / 16.0 - 0.5);
        for ch in 0..c {
            let want = (ch as f32 + 1.0) * (mx + 100.0 * my);
            let v = got[[ch, i]];
            assert!(
                (v - want).abs() < 1e-2 * want.abs().max(1.0),
                "landmark {i}, channel {ch}: {v} vs {want}"
            );
        }
    }
}

fn repo_file(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

#[test]
fn every_group_with_test_time_views_is_the_same_in_extraction_and_in_the_artefact() {
    use handmatch_core::embed::backbone_session::pixels;
    use handmatch_core::embed::EmbeddingSession;
    use handmatch_core::hand::{AlignmentSpec, HandAligner};
    use handmatch_export::artefact::{artefact_model, backbone_model, HeadSource};
    use handmatch_export::backbone::{Backbone, BackboneRef, HandModel, Tta};
    use handmatch_export::head::{Head, MlpHead};

    let model = repo_file(handmatch_export::backbone::hand::DEFAULT_MODEL);
    assert!(
        model.is_file(),
        "run scripts/setup.sh: {} is missing",
        model.display()
    );
    let hand = HandModel::open(&model)
        .unwrap()
        .with_features("geometry,trunk,shape,local".parse().unwrap());
    let tta: Tta = "flip".parse().unwrap();
    let backbone = Backbone {
        source: BackboneRef::Hand(&hand),
        tta: &tta,
    };
    let dir = tempfile::tempdir().unwrap();
    let backbone_path = dir.path().join("backbone.onnx");
    backbone_model(backbone, S)
        .unwrap()
        .save(&backbone_path)
        .unwrap();
    let mut session = BackboneSession::open(&backbone_path, &RuntimeOptions::default()).unwrap();

    let photo = image::open(repo_file("scripts/hand-landmarks/fixture-hand.png"))
        .unwrap()
        .to_rgb8();
    let aligner = HandAligner::new(AlignmentSpec::default(), S as u32);
    let aligned = aligner
        .align(&mut session, &[&photo])
        .unwrap()
        .remove(0)
        .unwrap();
    let features = session.run(pixels(&[&aligned.crop]).view()).unwrap();
    assert_eq!(features.ncols(), 400 + 1152 + SHAPE_DIM + 21 * 112);
    assert!(features.iter().all(|v| v.is_finite()));
    // The fingers of a real hand are found: most widths are positive.
    let shape = &features.row(0).to_vec()[400 + 1152..400 + 1152 + WIDTHS];
    let found = shape.iter().filter(|&&w| w > 0.05).count();
    assert!(
        found >= WIDTHS * 2 / 3,
        "only {found} of {WIDTHS} widths found: {shape:?}"
    );

    let head: Head = MlpHead::random(features.ncols(), 32, 16, 9).into();
    let want = head.forward(features.as_slice().unwrap());
    let (artefact, meta) =
        artefact_model(backbone, S, HeadSource::Trained(Box::new(head)), None).unwrap();
    assert!(
        meta.backbone
            .contains("features=geometry+trunk+shape+local")
            && meta.backbone.ends_with("+tta(flip)"),
        "{}",
        meta.backbone
    );
    let path = dir.path().join("model.onnx");
    artefact.save(&path).unwrap();
    let mut served = EmbeddingSession::open(&path, &RuntimeOptions::default()).unwrap();
    let got = served.embed_crops(&[&aligned.crop]).unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-5, "{g} vs {w}");
    }
}

#[test]
fn alignment_runs_the_detection_graph_alone_and_finds_what_the_whole_graph_finds() {
    use handmatch_core::embed::output_graph::graph_for_outputs;
    use handmatch_core::embed::runtime::open_session;
    use handmatch_core::embed::session::{run_detection, LANDMARKS_NAME, PRESENCE_NAME};
    use handmatch_core::embed::EmbeddingSession;
    use handmatch_core::hand::HandDetector;
    use handmatch_core::onnx_proto::ModelProto;
    use handmatch_export::backbone::HandModel;
    use ort::value::TensorRef;
    use prost::Message;

    let hand = HandModel::open(&repo_file(handmatch_export::backbone::hand::DEFAULT_MODEL))
        .expect("run scripts/setup.sh")
        .with_features("geometry,trunk,local".parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    random_head_artefact(&hand, &"flip,shift".parse().unwrap(), &path);

    let bytes = std::fs::read(&path).unwrap();
    let cut = graph_for_outputs(&bytes, &[PRESENCE_NAME, LANDMARKS_NAME])
        .unwrap()
        .expect("a hand artefact can be cut");
    let whole = ModelProto::decode(bytes.as_slice()).unwrap().graph.unwrap();
    let cut = ModelProto::decode(cut.as_slice()).unwrap().graph.unwrap();
    assert!(
        cut.node.len() * 2 < whole.node.len(),
        "{} of {} nodes kept",
        cut.node.len(),
        whole.node.len()
    );
    assert!(cut.output.iter().all(|o| o.name() != "embedding"));

    let photo = image::open(repo_file("scripts/hand-landmarks/fixture-hand.png"))
        .unwrap()
        .to_rgb8();
    let crop = image::imageops::resize(&photo, S as u32, S as u32, image::imageops::Triangle);
    let turned = image::imageops::rotate90(&crop);
    let mut served = EmbeddingSession::open(&path, &RuntimeOptions::default()).unwrap();
    let aligner = served.hand_aligner().expect("a hand artefact aligns");
    let aligned = aligner.align(&mut served, &[&photo]).unwrap().remove(0);
    assert!(aligned.is_ok(), "the fixture's hand is found: {aligned:?}");
    let found = served.detect(&[&crop, &turned]).unwrap();

    let (mut full, _) = open_session(&path, &RuntimeOptions::default()).unwrap();
    let mut batch = Array4::<u8>::zeros((2, S, S, 3));
    for (i, im) in [&crop, &turned].into_iter().enumerate() {
        for (x, y, p) in im.enumerate_pixels() {
            for c in 0..3 {
                batch[[i, y as usize, x as usize, c]] = p[c];
            }
        }
    }
    let want = run_detection(
        &mut full,
        ort::inputs![handmatch_core::embed::session::INPUT_NAME => TensorRef::from_array_view(batch.view()).unwrap()],
    )
    .unwrap();
    assert_eq!(found.len(), 2);
    for (f, w) in found.iter().zip(&want) {
        assert!((f.presence - w.presence).abs() <= 1e-5, "{f:?} vs {w:?}");
        for (a, b) in f.points.iter().zip(&w.points) {
            for k in 0..a.len() {
                assert!((a[k] - b[k]).abs() <= 1e-3, "{f:?} vs {w:?}");
            }
        }
    }
}

/// Writes `hand`'s artefact with a small random head (the same for every call) to `path`;
/// returns its backbone's description.
fn random_head_artefact(
    hand: &handmatch_export::backbone::HandModel,
    tta: &handmatch_export::backbone::Tta,
    path: &std::path::Path,
) -> String {
    use handmatch_export::artefact::{artefact_model, HeadSource};
    use handmatch_export::backbone::{Backbone, BackboneRef};

    let backbone = Backbone {
        source: BackboneRef::Hand(hand),
        tta,
    };
    let head = HeadSource::Random {
        hidden: 64,
        embedding_dim: 16,
        seed: 5,
    };
    let (artefact, meta) = artefact_model(backbone, S, head, None).unwrap();
    artefact.save(path).unwrap();
    meta.backbone
}

/// The hand network at `DEFAULT_MODEL` with every float weight scaled by `factor`, written
/// to `path`: another version of the same network, as an int8 one would be.
fn scaled_hand_network(factor: f32, path: &std::path::Path) {
    use handmatch_export::onnx::graph::float_values;
    use handmatch_export::onnx::proto::ModelProto;
    use prost::Message;

    let bytes = std::fs::read(repo_file(handmatch_export::backbone::hand::DEFAULT_MODEL))
        .expect("run scripts/setup.sh");
    let mut model = ModelProto::decode(bytes.as_slice()).unwrap();
    let graph = model.graph.as_mut().unwrap();
    for t in &mut graph.initializer {
        if t.data_type() == DataType::Float as i32 && t.dims.len() == 4 {
            let scaled: Vec<f32> = float_values(t).iter().map(|v| v * factor).collect();
            t.raw_data = Some(scaled.iter().flat_map(|v| v.to_le_bytes()).collect());
            t.float_data.clear();
        }
    }
    std::fs::write(path, model.encode_to_vec()).unwrap();
}

#[test]
fn an_embedding_network_computes_the_features_while_the_original_aligns_and_runs_apart() {
    use handmatch_core::embed::output_graph::graph_for_outputs;
    use handmatch_core::embed::session::{LANDMARKS_NAME, OUTPUT_NAME, PRESENCE_NAME};
    use handmatch_core::embed::EmbeddingSession;
    use handmatch_core::hand::HandDetector;
    use handmatch_core::onnx_proto::ModelProto;
    use handmatch_export::backbone::{HandModel, Tta};
    use prost::Message;
    use std::collections::HashSet;

    let dir = tempfile::tempdir().unwrap();
    let original = repo_file(handmatch_export::backbone::hand::DEFAULT_MODEL);
    let scaled = dir.path().join("scaled.onnx");
    scaled_hand_network(1.05, &scaled);
    let export = |embedding: Option<&std::path::Path>, name: &str| {
        let mut hand = HandModel::open(&original)
            .expect("run scripts/setup.sh")
            .with_features("geometry,trunk,local".parse().unwrap());
        if let Some(network) = embedding {
            hand = hand.with_embedding_network(network).unwrap();
        }
        let path = dir.path().join(name);
        let described = random_head_artefact(&hand, &Tta::none(), &path);
        (path, described)
    };
    let (plain, _) = export(None, "plain.onnx");
    let (same, _) = export(Some(&original), "same.onnx");
    let (other, described) = export(Some(&scaled), "other.onnx");
    assert!(described.contains(",embedding-network="), "{described}");

    let photo = image::open(repo_file("scripts/hand-landmarks/fixture-hand.png"))
        .unwrap()
        .to_rgb8();
    let crop = image::imageops::resize(&photo, S as u32, S as u32, image::imageops::Triangle);
    let open = |p: &std::path::Path| EmbeddingSession::open(p, &RuntimeOptions::default());
    let mut plain_session = open(&plain).unwrap();
    let aligner = plain_session.hand_aligner().unwrap();
    let aligned = aligner
        .align(&mut plain_session, &[&photo])
        .unwrap()
        .remove(0);
    let aligned = aligned.expect("the fixture's hand is found");
    let embed = |p: &std::path::Path| open(p).unwrap().embed_crops(&[&aligned.crop]).unwrap();
    let want = embed(&plain);

    // The same network as the embedding network: the same embedding.
    for (g, w) in embed(&same).iter().zip(&want) {
        assert!((g - w).abs() <= 1e-5, "{g} vs {w}");
    }
    // Another network computes the features...
    let got = embed(&other);
    let largest = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f32::max);
    assert!(largest > 1e-3, "the embedding did not change ({largest})");
    // ...while alignment still sees what the original sees.
    let mut other_session = open(&other).unwrap();
    let seen = other_session.detect(&[&crop, &aligned.crop]).unwrap();
    let expected = plain_session.detect(&[&crop, &aligned.crop]).unwrap();
    for (s, e) in seen.iter().zip(&expected) {
        assert!((s.presence - e.presence).abs() <= 1e-5, "{s:?} vs {e:?}");
        for (a, b) in s.points.iter().zip(&e.points) {
            for k in 0..a.len() {
                assert!((a[k] - b[k]).abs() <= 1e-3, "{s:?} vs {e:?}");
            }
        }
    }

    // The embedding's graph holds the other network alone: it shares with the alignment's
    // graph only the input's normalisation, where the plain artefact shares its network.
    let shared = |p: &std::path::Path| {
        let bytes = std::fs::read(p).unwrap();
        let names = |outputs: &[&str]| -> HashSet<String> {
            let cut = graph_for_outputs(&bytes, outputs).unwrap().unwrap();
            let graph = ModelProto::decode(cut.as_slice()).unwrap().graph.unwrap();
            graph.node.iter().map(|n| n.output[0].clone()).collect()
        };
        let detection = names(&[PRESENCE_NAME, LANDMARKS_NAME]);
        (
            names(&[OUTPUT_NAME]).intersection(&detection).count(),
            detection.len(),
        )
    };
    let (plain_shared, detection_nodes) = shared(&plain);
    let (other_shared, _) = shared(&other);
    assert!(
        plain_shared * 2 > detection_nodes,
        "{plain_shared} of {detection_nodes}"
    );
    assert!(other_shared <= 8, "{other_shared} nodes run for both");
}
