//! The backbones fine-tuning can train, behind one interface: where each comes from, its
//! features for the head, its trainable variables (and the running statistics training
//! moves), and how its tuned weights are written back (an ONNX graph for the hand network,
//! a checkpoint for DINOv2 and ResNet).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use handmatch_export::onnx::proto::ModelProto;
use prost::Message;

use handmatch_export::checkpoint::Checkpoint;

use super::autocast::Autocast;
use super::dinov2_net::Dinov2Net;
use super::graph_net::{GraphNet, TrainLayers};
use super::resnet_net::ResnetNet;

/// The hand network's input and the output whose gradient trains it.
pub const HAND_INPUT: &str = "image";
pub const HAND_TRUNK_OUTPUT: &str = "pooled";
/// The fine-tuned hand network: the original graph with the trained weights.
pub const TUNED_HAND_MODEL: &str = "hand_finetuned.onnx";
/// The fine-tuned checkpoint folder (DINOv2 or ResNet).
pub const TUNED_CHECKPOINT: &str = "checkpoint";

/// Where the network starts from.
#[derive(Debug, Clone)]
pub enum BackboneSource {
    /// The hand landmark model file; its trunk's pooled feature trains.
    HandGraph(PathBuf),
    /// A Hugging Face DINOv2 or ResNet checkpoint folder, at `image_size` inputs.
    Checkpoint { dir: PathBuf, image_size: usize },
}

impl BackboneSource {
    pub fn describe(&self) -> String {
        match self {
            BackboneSource::HandGraph(p) => p.display().to_string(),
            BackboneSource::Checkpoint { dir, .. } => dir.display().to_string(),
        }
    }
}

pub enum TrainedNet {
    Hand {
        net: GraphNet,
        onnx: Box<ModelProto>,
    },
    Dinov2(Dinov2Net),
    Resnet(ResnetNet),
}

/// Which layers train; how the network's batch norms behave in training (see
/// `resnet_net`; networks without batch norms to train ignore it); the forward pass's
/// arithmetic (autocast: DINOv2 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetOptions {
    pub layers: TrainLayers,
    pub freeze_batchnorm: bool,
    pub autocast: Autocast,
}

/// Autocast is written for DINOv2 only.
fn refuse_autocast(options: NetOptions, source: &BackboneSource) -> anyhow::Result<()> {
    if options.autocast != Autocast::Off {
        anyhow::bail!(
            "--autocast: written for DINOv2 only; train {} with --autocast off",
            source.describe()
        );
    }
    Ok(())
}

impl TrainedNet {
    pub fn open(
        source: &BackboneSource,
        options: NetOptions,
        device: &Device,
    ) -> anyhow::Result<Self> {
        let layers = options.layers;
        Ok(match source {
            BackboneSource::HandGraph(path) => {
                refuse_autocast(options, source)?;
                let onnx = ModelProto::decode(std::fs::read(path)?.as_slice())?;
                let graph = onnx
                    .graph
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("{}: no graph", path.display()))?;
                let net =
                    GraphNet::from_onnx(graph, HAND_INPUT, HAND_TRUNK_OUTPUT, layers, device)?;
                TrainedNet::Hand {
                    net,
                    onnx: Box::new(onnx),
                }
            }
            BackboneSource::Checkpoint { dir, image_size } => {
                let ckpt = Checkpoint::open(dir)?;
                if ckpt.model_type()? == "resnet" {
                    refuse_autocast(options, source)?;
                    let freeze = options.freeze_batchnorm;
                    TrainedNet::Resnet(ResnetNet::from_checkpoint(&ckpt, layers, freeze, device)?)
                } else {
                    // Dinov2Net refuses any other architecture, naming it.
                    let net = Dinov2Net::from_checkpoint(&ckpt, *image_size, layers, device)?;
                    TrainedNet::Dinov2(net.with_autocast(options.autocast.dtype()))
                }
            }
        })
    }

    /// Features `[N, D]` of images `[N, 3, S, S]` in [0, 1]; `training` lets training batch
    /// norms normalise by the batch and move their running statistics.
    pub fn features(&self, x: &Tensor, training: bool) -> candle_core::Result<Tensor> {
        match self {
            TrainedNet::Hand { net, .. } => Ok(net
                .forward(x, &[HAND_TRUNK_OUTPUT])?
                .remove(HAND_TRUNK_OUTPUT)
                .expect("asked for")),
            TrainedNet::Dinov2(net) => net.forward(x),
            TrainedNet::Resnet(net) => net.forward(x, training),
        }
    }

    pub fn feature_dim(&self) -> usize {
        match self {
            TrainedNet::Hand { .. } => handmatch_export::backbone::hand::POOLED_DIM,
            TrainedNet::Dinov2(net) => net.hidden_size(),
            TrainedNet::Resnet(net) => net.feature_dim(),
        }
    }

    pub fn vars(&self) -> Vec<(String, Var)> {
        match self {
            TrainedNet::Hand { net, .. } => net.vars(),
            TrainedNet::Dinov2(net) => net.vars(),
            TrainedNet::Resnet(net) => net.vars(),
        }
    }

    /// The running statistics that training moves (not the optimiser), by name.
    pub fn statistics(&self) -> Vec<(String, Var)> {
        match self {
            TrainedNet::Resnet(net) => net.statistics(),
            TrainedNet::Hand { .. } | TrainedNet::Dinov2(_) => Vec::new(),
        }
    }

    /// Writes the network with its current weights into `dir`: the hand model file, or a
    /// checkpoint folder; returns its path.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        match self {
            TrainedNet::Hand { net, onnx } => {
                let mut onnx = onnx.as_ref().clone();
                let graph = onnx.graph.as_mut().expect("checked on open");
                super::initializers::replace(graph, &net.trained_values())?;
                let path = dir.join(TUNED_HAND_MODEL);
                handmatch_core::atomic_file::AtomicFile::write(&path, &onnx.encode_to_vec())?;
                Ok(path)
            }
            TrainedNet::Dinov2(net) => {
                let path = dir.join(TUNED_CHECKPOINT);
                net.save_checkpoint(&path)?;
                Ok(path)
            }
            TrainedNet::Resnet(net) => {
                let path = dir.join(TUNED_CHECKPOINT);
                net.save_checkpoint(&path)?;
                Ok(path)
            }
        }
    }
}
