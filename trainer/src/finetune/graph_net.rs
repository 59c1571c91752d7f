//! An ONNX graph translated into a trainable candle network: its nodes evaluated in graph
//! order with candle operations, its initialisers as `Var`s (trainable) or plain tensors
//! (frozen). The translator knows the seven operator types of MediaPipe's hand landmark
//! network (Conv, Clip, Add, Gemm, Sigmoid, ReduceMean, Flatten); any other type is
//! refused by name when the network is built, not halfway through a forward pass.

use std::collections::{BTreeMap, HashMap, HashSet};

use candle_core::{Device, Result, Tensor, Var};
use handmatch_export::onnx::proto::{AttributeProto, GraphProto, NodeProto};

use super::conv::{conv2d, ConvSpec};
use super::initializers;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Conv(ConvSpec),
    Clip {
        min: f64,
        max: f64,
    },
    Add,
    Gemm {
        alpha: f64,
        beta: f64,
        trans_b: bool,
    },
    Sigmoid,
    ReduceMean {
        axes: Vec<usize>,
        keepdims: bool,
    },
    Flatten {
        axis: usize,
    },
}

#[derive(Debug, Clone)]
struct Node {
    op: Op,
    /// Data inputs (initialisers included, constants folded into `op` left out).
    inputs: Vec<String>,
    output: String,
}

/// Which layers train: all of them, or the last `n` in graph order on the way to the
/// requested output (the layers nearest the embedding); `last-0` trains the head alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainLayers {
    All,
    Last(usize),
}

impl std::str::FromStr for TrainLayers {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "all" {
            return Ok(TrainLayers::All);
        }
        s.strip_prefix("last-")
            .and_then(|n| n.parse().ok())
            .map(TrainLayers::Last)
            .ok_or_else(|| format!("`{s}`: expected `all` or `last-N`"))
    }
}

pub struct GraphNet {
    input: String,
    nodes: Vec<Node>,
    trainable: BTreeMap<String, Var>,
    frozen: HashMap<String, Tensor>,
}

impl GraphNet {
    /// The network of `graph` on `device`; the convolutions that `layers` selects on the
    /// way to `output` get `Var`s, everything else stays frozen.
    pub fn from_onnx(
        graph: &GraphProto,
        input: &str,
        output: &str,
        layers: TrainLayers,
        device: &Device,
    ) -> Result<Self> {
        let mut frozen = initializers::read_all(graph, device)?;
        let nodes = graph
            .node
            .iter()
            .map(|n| translate(n, &frozen))
            .collect::<Result<Vec<_>>>()?;
        let mut trainable = BTreeMap::new();
        for name in trainable_params(&nodes, output, layers) {
            if let Some(t) = frozen.remove(&name) {
                trainable.insert(name, Var::from_tensor(&t)?);
            }
        }
        Ok(Self {
            input: input.to_string(),
            nodes,
            trainable,
            frozen,
        })
    }

    /// The trainable tensors, in name order.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.trainable
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The current values of the trainable tensors, for `initializers::replace`.
    pub fn trained_values(&self) -> HashMap<String, Tensor> {
        self.trainable
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect()
    }

    /// Sets trainable tensors from a checkpoint; every trainable name must be present.
    pub fn load(&self, values: &HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in &self.trainable {
            let v = values
                .get(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("checkpoint lacks `{name}`")))?;
            var.set(v)?;
        }
        Ok(())
    }

    /// Runs the nodes needed for `outputs` on `x` (the graph's input).
    pub fn forward(&self, x: &Tensor, outputs: &[&str]) -> Result<HashMap<String, Tensor>> {
        let needed = self.needed(outputs);
        let mut values: HashMap<String, Tensor> = HashMap::new();
        values.insert(self.input.clone(), x.clone());
        for node in self.nodes.iter().filter(|n| needed.contains(&n.output)) {
            let args = node
                .inputs
                .iter()
                .map(|name| self.value(name, &values))
                .collect::<Result<Vec<_>>>()?;
            let y = apply(&node.op, &args)
                .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", node.output)))?;
            values.insert(node.output.clone(), y);
        }
        outputs
            .iter()
            .map(|&o| {
                let v = values
                    .get(o)
                    .cloned()
                    .ok_or_else(|| candle_core::Error::Msg(format!("no tensor `{o}`")))?;
                Ok((o.to_string(), v))
            })
            .collect()
    }

    fn value(&self, name: &str, values: &HashMap<String, Tensor>) -> Result<Tensor> {
        if let Some(v) = values.get(name) {
            return Ok(v.clone());
        }
        if let Some(v) = self.trainable.get(name) {
            return Ok(v.as_tensor().clone());
        }
        self.frozen
            .get(name)
            .cloned()
            .ok_or_else(|| candle_core::Error::Msg(format!("no value `{name}`")))
    }

    /// The outputs of every node that `outputs` depend on.
    fn needed(&self, outputs: &[&str]) -> HashSet<String> {
        ancestors(&self.nodes, outputs)
    }
}

fn ancestors(nodes: &[Node], outputs: &[&str]) -> HashSet<String> {
    let producer: HashMap<&str, &Node> = nodes.iter().map(|n| (n.output.as_str(), n)).collect();
    let mut needed = HashSet::new();
    let mut stack: Vec<&str> = outputs.to_vec();
    while let Some(name) = stack.pop() {
        if let Some(node) = producer.get(name) {
            if needed.insert(name.to_string()) {
                stack.extend(node.inputs.iter().map(String::as_str));
            }
        }
    }
    needed
}

/// The weight and bias names of the convolutions `layers` selects on the way to `output`.
fn trainable_params(nodes: &[Node], output: &str, layers: TrainLayers) -> Vec<String> {
    let needed = ancestors(nodes, &[output]);
    let convs: Vec<&Node> = nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Conv(_)) && needed.contains(&n.output))
        .collect();
    let skip = match layers {
        TrainLayers::All => 0,
        TrainLayers::Last(n) => convs.len().saturating_sub(n),
    };
    convs[skip..]
        .iter()
        .flat_map(|n| n.inputs[1..].iter().cloned())
        .collect()
}

fn translate(node: &NodeProto, consts: &HashMap<String, Tensor>) -> Result<Node> {
    let output =
        node.output.first().cloned().ok_or_else(|| {
            candle_core::Error::Msg(format!("node `{}` has no output", node.name()))
        })?;
    let a = Attrs(&node.attribute);
    let mut inputs = node.input.clone();
    let op = match node.op_type() {
        "Conv" => Op::Conv(conv_spec(&a)?),
        "Clip" => {
            let scalar = |i: usize, default: f64| -> Result<f64> {
                match node.input.get(i).filter(|s| !s.is_empty()) {
                    None => Ok(default),
                    Some(name) => consts
                        .get(name)
                        .ok_or_else(|| {
                            candle_core::Error::Msg(format!(
                                "Clip bound `{name}` is not a constant"
                            ))
                        })?
                        .flatten_all()?
                        .get(0)?
                        .to_scalar::<f32>()
                        .map(f64::from),
                }
            };
            let (min, max) = (scalar(1, f64::NEG_INFINITY)?, scalar(2, f64::INFINITY)?);
            inputs.truncate(1);
            Op::Clip { min, max }
        }
        "Add" => Op::Add,
        "Gemm" => {
            if a.int("transA", 0) != 0 {
                candle_core::bail!("Gemm `{output}` with transA is not supported");
            }
            Op::Gemm {
                alpha: a.float("alpha", 1.0),
                beta: a.float("beta", 1.0),
                trans_b: a.int("transB", 0) != 0,
            }
        }
        "Sigmoid" => Op::Sigmoid,
        "ReduceMean" => Op::ReduceMean {
            axes: a.ints("axes").iter().map(|&x| x as usize).collect(),
            keepdims: a.int("keepdims", 1) != 0,
        },
        "Flatten" => Op::Flatten {
            axis: a.int("axis", 1) as usize,
        },
        other => candle_core::bail!(
            "operator `{other}` (node `{output}`) is not one the fine-tuning translator knows"
        ),
    };
    Ok(Node { op, inputs, output })
}

fn conv_spec(a: &Attrs) -> Result<ConvSpec> {
    let kernel = a.ints("kernel_shape");
    let strides = a.ints("strides");
    let pads = a.ints("pads");
    if kernel.len() != 2 || a.ints("dilations").iter().any(|&d| d != 1) {
        candle_core::bail!("only 2-D, undilated Conv is supported");
    }
    let pair = |v: &[i64]| {
        if v.is_empty() {
            (1, 1)
        } else {
            (v[0] as usize, v[1] as usize)
        }
    };
    let pads: [usize; 4] = if pads.is_empty() {
        [0; 4]
    } else {
        [pads[0], pads[1], pads[2], pads[3]].map(|p| p as usize)
    };
    Ok(ConvSpec {
        group: a.int("group", 1) as usize,
        kernel: pair(&kernel),
        stride: pair(&strides),
        pads,
    })
}

fn apply(op: &Op, args: &[Tensor]) -> Result<Tensor> {
    match op {
        Op::Conv(spec) => conv2d(&args[0], &args[1], args.get(2), spec),
        Op::Clip { min, max } => args[0].clamp(*min as f32, *max as f32),
        Op::Add => args[0].broadcast_add(&args[1]),
        Op::Gemm {
            alpha,
            beta,
            trans_b,
        } => {
            let b = if *trans_b {
                args[1].t()?
            } else {
                args[1].clone()
            };
            let y = (args[0].matmul(&b)? * *alpha)?;
            match args.get(2) {
                Some(c) => y.broadcast_add(&(c * *beta)?),
                None => Ok(y),
            }
        }
        Op::Sigmoid => candle_nn::ops::sigmoid(&args[0]),
        Op::ReduceMean { axes, keepdims } => {
            if *keepdims {
                args[0].mean_keepdim(axes.clone())
            } else {
                args[0].mean(axes.clone())
            }
        }
        Op::Flatten { axis } => {
            let dims = args[0].dims();
            let outer: usize = dims[..*axis].iter().product();
            let inner: usize = dims[*axis..].iter().product();
            args[0].reshape((outer, inner))
        }
    }
}

/// A node's attributes by name.
struct Attrs<'a>(&'a [AttributeProto]);

impl Attrs<'_> {
    fn find(&self, name: &str) -> Option<&AttributeProto> {
        self.0.iter().find(|a| a.name() == name)
    }
    fn int(&self, name: &str, default: i64) -> i64 {
        self.find(name).map_or(default, |a| a.i())
    }
    fn float(&self, name: &str, default: f64) -> f64 {
        self.find(name).map_or(default, |a| f64::from(a.f()))
    }
    fn ints(&self, name: &str) -> Vec<i64> {
        self.find(name).map_or_else(Vec::new, |a| a.ints.clone())
    }
}
