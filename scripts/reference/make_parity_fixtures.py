"""Writes the exporter's parity fixtures from Hugging Face transformers.

Each case is a small random checkpoint (config.json + model.safetensors, saved exactly as
`save_pretrained` writes it) plus `io.safetensors` holding the input `pixel_values` and the
reference `pooler_output`. Every parameter and buffer is set to non-trivial random values
(LayerScale, LayerNorm and BatchNorm affine terms, running statistics, biases), so that a
swapped or ignored tensor in the exporter changes the output and cannot hide.

Development only: run through scripts/reference/run.sh, which installs the pinned
requirements into a throw-away virtual environment. Nothing here is needed at run time.
"""

import json
import math
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import Dinov2Config, Dinov2Model, ResNetConfig, ResNetModel

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "crates/handmatch-export/tests/fixtures/parity")


def randomise(model: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)

    def randn(t, scale, offset=0.0):
        return torch.randn(t.shape, generator=gen) * scale + offset

    with torch.no_grad():
        for name, t in list(model.state_dict(keep_vars=True).items()):
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                new = torch.rand(t.shape, generator=gen) + 0.5
            elif name.endswith("running_mean"):
                new = randn(t, 0.2)
            elif name.endswith("lambda1"):
                new = torch.rand(t.shape, generator=gen) * 1.5 + 0.25
            elif t.dim() == 1 and name.endswith("weight"):
                new = randn(t, 0.2, 1.0)  # LayerNorm / BatchNorm scale
            elif name.endswith("bias"):
                new = randn(t, 0.1)
            elif "position_embeddings" in name or "cls_token" in name or "mask_token" in name:
                new = randn(t, 0.5)
            else:
                fan_in = math.prod(t.shape[1:]) if t.dim() > 1 else t.shape[0]
                new = randn(t, 1.0 / math.sqrt(fan_in))
            t.copy_(new.to(t.dtype))


def write_case(name, model, image_size, batch, seed, original_format=True, note=""):
    randomise(model, seed)
    model.eval()
    gen = torch.Generator().manual_seed(seed + 1)
    pixel_values = torch.randn((batch, 3, image_size, image_size), generator=gen)
    with torch.no_grad():
        pooled = model(pixel_values=pixel_values).pooler_output.flatten(1).contiguous()
    out = OUT / name
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, save_original_format=original_format)
    save_file({"pixel_values": pixel_values.contiguous(), "pooler_output": pooled}, out / "io.safetensors")
    case = {
        "name": name,
        "model_type": model.config.model_type,
        "image_size": image_size,
        "batch": batch,
        "output_dim": pooled.shape[1],
        "output_max_abs": float(pooled.abs().max()),
        "layout": "hub" if original_format else "transformers-v5",
        "note": note,
    }
    print(json.dumps(case))
    return case


def main() -> None:
    torch.manual_seed(0)
    cases = []
    # The real deployment case: a checkpoint trained at 518 px (37x37 patches) exported at
    # 224 px, so the position embeddings are interpolated down to 16x16.
    cfg = Dinov2Config(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=192,
                       mlp_ratio=4, patch_size=14, image_size=518, layerscale_value=1.0)
    cases.append(write_case("dinov2_518_to_224", Dinov2Model(cfg),
                            224, 2, 11, note="interpolation down, GELU MLP, Hub layout"))
    # Giant-style SwiGLU feed-forward, interpolation up (7x7 -> 9x9), transformers v5 tensor names.
    cfg = Dinov2Config(hidden_size=48, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=4, patch_size=14,
                       image_size=98, use_swiglu_ffn=True, layer_norm_eps=1e-6)
    cases.append(write_case("dinov2_swiglu_98_to_126", Dinov2Model(cfg), 126, 2, 22, original_format=False,
                            note="SwiGLU, interpolation up, v5 layout"))
    # No interpolation, no query/key/value bias, another LayerNorm epsilon.
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2, patch_size=14,
                       image_size=56, qkv_bias=False, layer_norm_eps=1e-5)
    cases.append(write_case("dinov2_native_56", Dinov2Model(cfg), 56, 3, 33, note="S = image_size, qkv_bias off"))
    # The microsoft/resnet-50 layout (bottleneck blocks), scaled down.
    cfg = ResNetConfig(embedding_size=16, hidden_sizes=[32, 64, 128, 256], depths=[2, 1, 2, 1],
                       layer_type="bottleneck", hidden_act="relu", downsample_in_first_stage=False)
    cases.append(write_case("resnet_bottleneck_224", ResNetModel(cfg), 224, 1, 44, note="bottleneck, Hub layout"))
    cfg = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 32, 64], depths=[1, 2, 1, 1], layer_type="basic",
                       hidden_act="relu", downsample_in_first_stage=True)
    cases.append(write_case("resnet_basic_96", ResNetModel(cfg), 96, 2, 55, note="basic blocks, stride in stage 0"))
    meta = {
        "generator": "scripts/reference/make_parity_fixtures.py",
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "cases": cases,
    }
    (OUT / "cases.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()
