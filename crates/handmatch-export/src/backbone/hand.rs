//! The `hand-landmarks` backbone: MediaPipe's hand landmark network (imported to ONNX by
//! `handmatch-train import-hand-landmarks`) spliced into our graph. Its features are a
//! geometry descriptor that looks the same from the palm and the back of the hand — the
//! 210 pairwise distances between the 21 world landmarks divided by their mean, and the 190
//! cosines between the 20 bones — followed by the network's 1152-d pooled trunk feature.
//! The landmark model's presence and landmarks are exposed too, so the same graph also
//! finds the hand for alignment. Which groups of features it emits (`HandFeatureSet`:
//! geometry, trunk, silhouette shape, landmark-sampled local maps) is the model's choice,
//! recorded in its description.

use std::path::{Path, PathBuf};

use prost::Message;
use sha2::{Digest, Sha256};

use super::features::Features;
use super::hand_features::{HandFeatureGroup, HandFeatureSet};
use super::landmark_samples::{
    sample_at, HandPoints, LocalMap, ALL_MAPS, MAP_112, MAP_14, MAP_28, MAP_56,
};
use super::silhouette::{self, SHAPE_DIM};
use crate::error::{ExportError, Result};
use crate::onnx::proto::{GraphProto, ModelProto};
use crate::onnx::GraphBuilder;
use handmatch_core::embed::metadata::{IMAGENET_MEAN, IMAGENET_STD};
use handmatch_core::hand::landmarks::{LANDMARKS, PARENT};
use handmatch_core::hand::LANDMARK_INPUT;

/// Where `import-hand-landmarks` puts the model, relative to the repository.
pub const DEFAULT_MODEL: &str = "models/hand-landmarks/hand_landmark_full.onnx";
pub const INPUT: &str = "image";
const OUTPUTS: [&str; 5] = [
    "landmarks",
    "presence",
    "handedness",
    "world_landmarks",
    "pooled",
];
pub const POOLED_DIM: usize = 1152;
pub const DISTANCES: usize = LANDMARKS * (LANDMARKS - 1) / 2;
pub const BONES: usize = LANDMARKS - 1;
pub const BONE_COSINES: usize = BONES * (BONES - 1) / 2;
pub const GEOMETRY_DIM: usize = DISTANCES + BONE_COSINES;

pub struct HandModel {
    path: PathBuf,
    graph: GraphProto,
    sha256: String,
    features: HandFeatureSet,
    /// A fine-tuned copy of the same network whose trunk (pooled feature and maps) the
    /// features read; presence and landmarks always come from the original weights, so
    /// alignment still finds the hand.
    trunk: Option<NetworkCopy>,
    /// Another version of the network (an int8 one, say) that computes every feature,
    /// landmarks read by the features included; the original still gives the artefact's
    /// presence and landmarks, so alignment is the original's. A session that computes
    /// only the embedding then runs this network alone (`embed::output_graph`).
    embedding: Option<NetworkCopy>,
}

struct NetworkCopy {
    graph: GraphProto,
    sha256: String,
}

/// What the hand branch adds to a graph.
pub struct HandBranch {
    pub features: Features,
    /// `[N, 1]` hand presence and `[N, 63]` landmarks of the input crop.
    pub presence: String,
    pub landmarks: String,
}

impl HandModel {
    pub fn open(path: &Path) -> Result<Self> {
        let (graph, sha256) = read_network(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            graph,
            sha256,
            features: HandFeatureSet::default(),
            trunk: None,
            embedding: None,
        })
    }

    /// The same network whose features come from the fine-tuned copy at `path` (written by
    /// `handmatch-train fit --fine-tune`): same nodes, same initialiser names and shapes.
    pub fn with_trunk(mut self, path: &Path) -> Result<Self> {
        let (graph, sha256) = read_network(path)?;
        let shapes = |g: &GraphProto| -> Vec<(String, Vec<i64>)> {
            g.initializer
                .iter()
                .map(|t| (t.name().to_string(), t.dims.clone()))
                .collect()
        };
        if shapes(&graph) != shapes(&self.graph) || graph.node != self.graph.node {
            return Err(ExportError::Argument {
                field: "hand-trunk".into(),
                reason: format!(
                    "{}: not a fine-tuned copy of {} (its nodes or weight shapes differ)",
                    path.display(),
                    self.path.display()
                ),
            });
        }
        self.trunk = Some(NetworkCopy { graph, sha256 });
        Ok(self)
    }

    /// The same features computed by the network at `path` (any version of it with the
    /// same input, outputs and maps: `handmatch-train quantize-hand` writes an int8 one).
    pub fn with_embedding_network(mut self, path: &Path) -> Result<Self> {
        let (graph, sha256) = read_network(path)?;
        self.embedding = Some(NetworkCopy { graph, sha256 });
        Ok(self)
    }
}

/// The graph of a hand landmark model file and the file's SHA-256, checked for the inputs,
/// outputs and maps the hand branch reads.
fn read_network(path: &Path) -> Result<(GraphProto, String)> {
    let bytes = std::fs::read(path).map_err(|source| ExportError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(
            source.kind(),
            format!(
                "{source} (run `handmatch-train import-hand-landmarks` to fetch the hand model)"
            ),
        ),
    })?;
    let invalid = |reason: String| ExportError::Argument {
        field: "hand-model".into(),
        reason: format!("{}: {reason}", path.display()),
    };
    let model = ModelProto::decode(bytes.as_slice())
        .map_err(|e| invalid(format!("not an ONNX model: {e}")))?;
    let graph = model.graph.ok_or_else(|| invalid("no graph".into()))?;
    if !graph.input.iter().any(|i| i.name() == INPUT) {
        return Err(invalid(format!("no input `{INPUT}`")));
    }
    for o in OUTPUTS {
        if !graph.output.iter().any(|v| v.name() == o) {
            return Err(invalid(format!(
                "no output `{o}` (import it with `handmatch-train import-hand-landmarks`)"
            )));
        }
    }
    for map in ALL_MAPS {
        if !graph
            .node
            .iter()
            .any(|n| n.output.iter().any(|o| o == map.tensor))
        {
            return Err(invalid(format!(
                "no tensor `{}` (not the model `import-hand-landmarks` imports)",
                map.tensor
            )));
        }
    }
    Ok((graph, hex::encode(Sha256::digest(&bytes))))
}

impl HandModel {
    /// The same network emitting other feature groups.
    pub fn with_features(mut self, features: HandFeatureSet) -> Self {
        self.features = features;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn description(&self) -> String {
        let tuned = self.trunk.as_ref().map_or(String::new(), |t| {
            format!(",tuned-trunk={}", &t.sha256[..16])
        });
        let embedding = self.embedding.as_ref().map_or(String::new(), |e| {
            format!(",embedding-network={}", &e.sha256[..16])
        });
        format!(
            "hand-landmarks(mediapipe-hand_landmark_full,sha256={}{tuned}{embedding},features={})",
            &self.sha256[..16],
            self.features
        )
    }
}

/// Adds the hand branch reading ImageNet-normalised `pixels` (`[N, 3, 224, 224]`), the
/// spliced network's tensors named under `prefix`.
pub fn build(
    g: &mut GraphBuilder,
    model: &HandModel,
    pixels: &str,
    image_size: usize,
    prefix: &str,
) -> Result<HandBranch> {
    check_size(image_size)?;
    let (unit, out) = splice(g, model, pixels, prefix);
    // The features read the embedding network when there is one, and the fine-tuned
    // copy's trunk when there is one.
    let embedding_prefix = format!("{prefix}_embedding");
    let (feature_out, feature_prefix) = match &model.embedding {
        Some(e) => (
            g.splice(&e.graph, &embedding_prefix, &[(INPUT, &unit)]),
            embedding_prefix.as_str(),
        ),
        None => (out.clone(), prefix),
    };
    let landmarks = &feature_out["landmarks"];
    let trunk_prefix = format!("{prefix}_tuned");
    let (trunk_out, map_prefix) = match &model.trunk {
        Some(t) => (
            g.splice(&t.graph, &trunk_prefix, &[(INPUT, &unit)]),
            trunk_prefix.as_str(),
        ),
        None => (feature_out.clone(), feature_prefix),
    };
    let mut parts = Vec::new();
    let mut layout = Vec::new();
    for group in model.features.groups() {
        let (value, width) = match group {
            HandFeatureGroup::Geometry => {
                (geometry(g, &feature_out["world_landmarks"]), GEOMETRY_DIM)
            }
            HandFeatureGroup::Trunk => (
                g.reshape(&trunk_out["pooled"], &[-1, POOLED_DIM as i64]),
                POOLED_DIM,
            ),
            HandFeatureGroup::Shape => (
                silhouette::shape(g, &unit, landmarks, image_size),
                SHAPE_DIM,
            ),
            HandFeatureGroup::Local => {
                local(g, map_prefix, MAP_14, landmarks, HandPoints::Landmarks)
            }
            HandFeatureGroup::LocalFine => {
                local(g, map_prefix, MAP_28, landmarks, HandPoints::Both)
            }
            HandFeatureGroup::Local56 => local(g, map_prefix, MAP_56, landmarks, HandPoints::Both),
            HandFeatureGroup::Local112 => {
                local(g, map_prefix, MAP_112, landmarks, HandPoints::Dense)
            }
        };
        parts.push(value);
        layout.push((group.name().to_string(), width));
    }
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let value = g.op(
        "Concat",
        &refs,
        vec![("axis", crate::onnx::graph::Attr::Int(1))],
    );
    Ok(HandBranch {
        features: Features {
            value,
            dim: layout.iter().map(|(_, w)| w).sum(),
            description: model.description(),
            layout,
        },
        presence: out["presence"].clone(),
        landmarks: out["landmarks"].clone(),
    })
}

/// `map` of the network spliced under `prefix`, read at `points`; returns it and its width.
fn local(
    g: &mut GraphBuilder,
    prefix: &str,
    map: LocalMap,
    landmarks: &str,
    points: HandPoints,
) -> (String, usize) {
    let tensor = format!("{prefix}/{}", map.tensor);
    let value = sample_at(g, &tensor, landmarks, points, LANDMARK_INPUT as usize);
    (value, map.channels * points.count())
}

/// Only what alignment needs, `(presence, landmarks)`: for graphs whose features come from
/// another copy of the network (test-time views).
pub fn detection(
    g: &mut GraphBuilder,
    model: &HandModel,
    pixels: &str,
    image_size: usize,
    prefix: &str,
) -> Result<(String, String)> {
    check_size(image_size)?;
    let (_, out) = splice(g, model, pixels, prefix);
    Ok((out["presence"].clone(), out["landmarks"].clone()))
}

/// The network on `pixels`; returns its input in [0, 1] and its outputs by name.
fn splice(
    g: &mut GraphBuilder,
    model: &HandModel,
    pixels: &str,
    prefix: &str,
) -> (String, std::collections::HashMap<String, String>) {
    // Every backbone reads ImageNet-normalised pixels; MediaPipe wants [0, 1].
    let std = g.const_f32("hand_std", &[1, 3, 1, 1], IMAGENET_STD.to_vec());
    let mean = g.const_f32("hand_mean", &[1, 3, 1, 1], IMAGENET_MEAN.to_vec());
    let x = g.mul(pixels, &std);
    let unit = g.add(&x, &mean);
    let out = g.splice(&model.graph, prefix, &[(INPUT, &unit)]);
    (unit, out)
}

fn check_size(image_size: usize) -> Result<()> {
    if image_size != LANDMARK_INPUT as usize {
        return Err(ExportError::Argument {
            field: "image-size".into(),
            reason: format!(
                "the hand landmark model takes {LANDMARK_INPUT} x {LANDMARK_INPUT} crops, not {image_size}"
            ),
        });
    }
    Ok(())
}

fn upper_triangle(n: usize) -> Vec<i64> {
    let mut idx = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            idx.push((i * n + j) as i64);
        }
    }
    idx
}

/// `[N, 63]` world landmarks → `[N, 400]`: normalised distances, then bone cosines. Both are
/// unchanged by rotation, scale (distances are divided by their mean) and mirroring.
pub fn geometry(g: &mut GraphBuilder, world: &str) -> String {
    use crate::onnx::graph::Attr;
    let n = LANDMARKS as i64;
    let p = g.reshape(world, &[-1, n, 3]);
    let ax2 = g.const_i64("axes", &[2]);
    let ax1 = g.const_i64("axes", &[1]);
    let ax3 = g.const_i64("axes", &[3]);
    let a = g.op("Unsqueeze", &[&p, &ax2], vec![]);
    let b = g.op("Unsqueeze", &[&p, &ax1], vec![]);
    let d = g.op("Sub", &[&a, &b], vec![]);
    let sq = g.mul(&d, &d);
    let sum = g.op("ReduceSum", &[&sq, &ax3], vec![("keepdims", Attr::Int(0))]);
    let eps = g.const_f32("eps", &[], vec![1e-12]);
    let sum = g.add(&sum, &eps);
    let dist = g.op("Sqrt", &[&sum], vec![]);
    let flat = g.reshape(&dist, &[-1, n * n]);
    let pairs = g.const_i64("pairs", &upper_triangle(LANDMARKS));
    let dists = g.op("Gather", &[&flat, &pairs], vec![("axis", Attr::Int(1))]);
    let mean = g.op(
        "ReduceMean",
        &[&dists],
        vec![("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(1))],
    );
    let mean = g.add(&mean, &eps);
    let dists = g.op("Div", &[&dists, &mean], vec![]);

    let children: Vec<i64> = (1..LANDMARKS as i64).collect();
    let parents: Vec<i64> = PARENT[1..].iter().map(|&p| p as i64).collect();
    let children = g.const_i64("children", &children);
    let parents = g.const_i64("parents", &parents);
    let c = g.op("Gather", &[&p, &children], vec![("axis", Attr::Int(1))]);
    let q = g.op("Gather", &[&p, &parents], vec![("axis", Attr::Int(1))]);
    let bone = g.op("Sub", &[&c, &q], vec![]);
    let sq = g.mul(&bone, &bone);
    let len2 = g.op("ReduceSum", &[&sq, &ax2], vec![("keepdims", Attr::Int(1))]);
    let len2 = g.add(&len2, &eps);
    let len = g.op("Sqrt", &[&len2], vec![]);
    let unit = g.op("Div", &[&bone, &len], vec![]);
    let unit_t = g.transpose(&unit, &[0, 2, 1]);
    let gram = g.op("MatMul", &[&unit, &unit_t], vec![]);
    let gram = g.reshape(&gram, &[-1, (BONES * BONES) as i64]);
    let bone_pairs = g.const_i64("bone_pairs", &upper_triangle(BONES));
    let cosines = g.op(
        "Gather",
        &[&gram, &bone_pairs],
        vec![("axis", Attr::Int(1))],
    );
    g.op("Concat", &[&dists, &cosines], vec![("axis", Attr::Int(1))])
}
