//! Random-initialised checkpoints of the real architectures, written in the Hugging Face
//! layout (`config.json` + `model.safetensors`, Hub tensor names), for tests and benchmarks:
//! no pretrained weights can be fetched here.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde_json::json;

use crate::backbone::dinov2::Dinov2Config;
use crate::error::{ExportError, Result};
use crate::head::file::write_safetensors;
use crate::tensor::Tensor;
use handmatch_core::atomic_file::AtomicFile;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    /// hidden 64, 2 layers: for fast tests.
    Dinov2Tiny,
    Dinov2Small,
    /// The facebook/dinov2-base configuration.
    Dinov2Base,
    Dinov2Large,
    /// 1.1 B parameters, SwiGLU feed-forward.
    Dinov2Giant,
    /// Bottleneck blocks, widths 32..256, one block per stage: for fast tests.
    ResnetTiny,
    Resnet18,
    /// The microsoft/resnet-50 configuration.
    Resnet50,
}

impl Arch {
    pub fn config(self) -> serde_json::Value {
        let dinov2 = |hidden: usize, layers: usize, heads: usize, image: usize, swiglu: bool| {
            json!({
                "architectures": ["Dinov2Model"], "model_type": "dinov2",
                "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
                "mlp_ratio": 4, "hidden_act": "gelu", "layer_norm_eps": 1e-6, "image_size": image,
                "patch_size": 14, "num_channels": 3, "qkv_bias": true, "layerscale_value": 1.0,
                "use_swiglu_ffn": swiglu, "initializer_range": 0.02
            })
        };
        let resnet = |layer: &str, emb: usize, widths: [usize; 4], depths: [usize; 4]| {
            json!({
                "architectures": ["ResNetModel"], "model_type": "resnet", "num_channels": 3,
                "embedding_size": emb, "hidden_sizes": widths, "depths": depths, "layer_type": layer,
                "hidden_act": "relu", "downsample_in_first_stage": false, "downsample_in_bottleneck": false
            })
        };
        match self {
            Arch::Dinov2Tiny => dinov2(64, 2, 2, 224, false),
            Arch::Dinov2Small => dinov2(384, 12, 6, 518, false),
            Arch::Dinov2Base => dinov2(768, 12, 12, 518, false),
            Arch::Dinov2Large => dinov2(1024, 24, 16, 518, false),
            Arch::Dinov2Giant => dinov2(1536, 40, 24, 518, true),
            Arch::ResnetTiny => resnet("bottleneck", 16, [32, 64, 128, 256], [1, 1, 1, 1]),
            Arch::Resnet18 => resnet("basic", 64, [64, 128, 256, 512], [2, 2, 2, 2]),
            Arch::Resnet50 => resnet("bottleneck", 64, [256, 512, 1024, 2048], [3, 4, 6, 3]),
        }
    }
}

struct Init {
    rng: ChaCha8Rng,
    tensors: Vec<(String, Tensor)>,
}

impl Init {
    fn normal(&mut self, name: String, shape: &[usize], std: f32) {
        let n = Normal::new(0.0f32, std).unwrap();
        let data = (0..shape.iter().product())
            .map(|_| n.sample(&mut self.rng))
            .collect();
        self.tensors.push((name, Tensor::new(shape.to_vec(), data)));
    }

    fn fill(&mut self, name: String, shape: &[usize], value: f32) {
        self.tensors.push((name, Tensor::scalar_like(shape, value)));
    }
}

/// Writes `config.json` and `model.safetensors` for `arch` into `out`.
pub fn write(arch: Arch, seed: u64, out: &Path) -> Result<()> {
    let config = arch.config();
    let mut init = Init {
        rng: ChaCha8Rng::seed_from_u64(seed),
        tensors: Vec::new(),
    };
    match config["model_type"].as_str() {
        Some("dinov2") => dinov2(&mut init, &serde_json::from_value(config.clone()).unwrap()),
        _ => resnet(&mut init, &config),
    }
    std::fs::create_dir_all(out).map_err(ExportError::io(out))?;
    let refs: Vec<(&str, &Tensor)> = init.tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    write_safetensors(&out.join("model.safetensors"), &refs)?;
    let config_path = out.join("config.json");
    let text = serde_json::to_string_pretty(&config).unwrap() + "\n";
    AtomicFile::write(&config_path, text.as_bytes()).map_err(ExportError::io(&config_path))
}

/// transformers' Dinov2 init: truncated-normal(0.02)-like weights, zero biases, unit
/// LayerNorms, LayerScale at `layerscale_value`.
fn dinov2(init: &mut Init, cfg: &Dinov2Config) {
    let h = cfg.hidden_size;
    let p = cfg.patch_size;
    let grid = cfg.image_size / p;
    let std = 0.02;
    init.normal("embeddings.cls_token".into(), &[1, 1, h], std);
    init.fill("embeddings.mask_token".into(), &[1, h], 0.0);
    init.normal(
        "embeddings.position_embeddings".into(),
        &[1, grid * grid + 1, h],
        std,
    );
    init.normal(
        "embeddings.patch_embeddings.projection.weight".into(),
        &[h, 3, p, p],
        std,
    );
    init.fill(
        "embeddings.patch_embeddings.projection.bias".into(),
        &[h],
        0.0,
    );
    for i in 0..cfg.num_hidden_layers {
        let l = format!("encoder.layer.{i}");
        for norm in ["norm1", "norm2"] {
            init.fill(format!("{l}.{norm}.weight"), &[h], 1.0);
            init.fill(format!("{l}.{norm}.bias"), &[h], 0.0);
        }
        for proj in [
            "attention.attention.query",
            "attention.attention.key",
            "attention.attention.value",
            "attention.output.dense",
        ] {
            init.normal(format!("{l}.{proj}.weight"), &[h, h], std);
            init.fill(format!("{l}.{proj}.bias"), &[h], 0.0);
        }
        init.fill(format!("{l}.layer_scale1.lambda1"), &[h], 1.0);
        init.fill(format!("{l}.layer_scale2.lambda1"), &[h], 1.0);
        let (fin, fout, inner) = if cfg.use_swiglu_ffn {
            ("mlp.weights_in", "mlp.weights_out", cfg.swiglu_hidden())
        } else {
            ("mlp.fc1", "mlp.fc2", cfg.mlp_hidden())
        };
        let in_rows = if cfg.use_swiglu_ffn { 2 * inner } else { inner };
        init.normal(format!("{l}.{fin}.weight"), &[in_rows, h], std);
        init.fill(format!("{l}.{fin}.bias"), &[in_rows], 0.0);
        init.normal(format!("{l}.{fout}.weight"), &[h, inner], std);
        init.fill(format!("{l}.{fout}.bias"), &[h], 0.0);
    }
    init.fill("layernorm.weight".into(), &[h], 1.0);
    init.fill("layernorm.bias".into(), &[h], 0.0);
}

/// transformers' ResNet init: Kaiming-normal (fan-out) convolutions, identity BatchNorms.
fn resnet(init: &mut Init, cfg: &serde_json::Value) {
    let emb = cfg["embedding_size"].as_u64().unwrap() as usize;
    let widths: Vec<usize> = serde_json::from_value(cfg["hidden_sizes"].clone()).unwrap();
    let depths: Vec<usize> = serde_json::from_value(cfg["depths"].clone()).unwrap();
    let bottleneck = cfg["layer_type"] == "bottleneck";
    let conv = |init: &mut Init, prefix: &str, cin: usize, cout: usize, k: usize| {
        let std = (2.0 / (cout * k * k) as f32).sqrt();
        init.normal(
            format!("{prefix}.convolution.weight"),
            &[cout, cin, k, k],
            std,
        );
        init.fill(format!("{prefix}.normalization.weight"), &[cout], 1.0);
        init.fill(format!("{prefix}.normalization.bias"), &[cout], 0.0);
        init.fill(format!("{prefix}.normalization.running_mean"), &[cout], 0.0);
        init.fill(format!("{prefix}.normalization.running_var"), &[cout], 1.0);
    };
    conv(init, "embedder.embedder", 3, emb, 7);
    let mut cin = emb;
    for (s, (&cout, &depth)) in widths.iter().zip(&depths).enumerate() {
        for l in 0..depth {
            let prefix = format!("encoder.stages.{s}.layers.{l}");
            let input = if l == 0 { cin } else { cout };
            let stride = if l == 0 && s > 0 { 2 } else { 1 };
            if input != cout || stride != 1 {
                conv(init, &format!("{prefix}.shortcut"), input, cout, 1);
            }
            if bottleneck {
                let r = cout / 4;
                conv(init, &format!("{prefix}.layer.0"), input, r, 1);
                conv(init, &format!("{prefix}.layer.1"), r, r, 3);
                conv(init, &format!("{prefix}.layer.2"), r, cout, 1);
            } else {
                conv(init, &format!("{prefix}.layer.0"), input, cout, 3);
                conv(init, &format!("{prefix}.layer.1"), cout, cout, 3);
            }
        }
        cin = cout;
    }
}
