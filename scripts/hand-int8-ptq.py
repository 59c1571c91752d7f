#!/usr/bin/env python3
"""Can the hand landmark network's convolutions be quantised to int8 without losing the
hand? ONNX Runtime's own post-training quantisers on the imported network, against fp32, on
real photos (docs/performance.md, "int8 and the hand landmark network"). A probe: the
network an artefact uses comes from `handmatch-train quantize-hand`, our own quantiser of
the same method (bounded equalisation, bias correction, static QDQ), no Python needed.

Variants: dynamic (ConvInteger, u8 or s8 weights, per channel) and static QDQ (u8
activations calibrated on CAL images, s8 weights per channel, MinMax or 99.99th
percentile), on every operator, on the convolutions only, or on all but the stem
convolution and the output Gemms; last, static QDQ after activation equalisation (see
`equalise`), bounded equalisation that keeps the fused Clip, and that with bias
correction (`bias_correct`). For each: the pooled trunk
output's cosine to fp32 (mean and worst), the landmarks' error in pixels of the 224 input
(mean and worst), and batch-8 throughput on two threads, fp32 measured in the same run.

The photos are resized to 224 x 224 as they are (no alignment): the network's input
scale, not the artefact's exact crops. The evaluation and calibration images are disjoint
(the first N and the last CAL of the sorted directory).

Usage: .venv-hand/bin/python scripts/hand-int8-ptq.py IMAGES_DIR [N=64] [CAL=128] [OUT]
       .venv-hand/bin/python scripts/hand-int8-ptq.py IMAGES_DIR [N=256] [CAL=128] [OUT] --mixed

With OUT, the last variant's model (bounded equalisation and bias correction, the stem and
the Gemm heads left fp32) is written there, for `handmatch-train ... --hand-embedding-model
OUT` (or `--hand-model OUT`). Calibrate on the crops an artefact feeds the network: IMAGES_DIR
from `cargo run --release -p handmatch-trainer --example write_aligned_crops`. `--mixed` prints only the mixed-precision
table (`mixed_precision`): which operators, left fp32, would recover the most, chosen on
64 further photos (the N+1st to the N+64th), and the network with the K most costly left
fp32.
"""

import glob
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper, version_converter
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process
from PIL import Image

MODEL = "models/hand-landmarks/hand_landmark_full.onnx"
SIDE = 224
POOLED, LANDMARKS = 4, 0


def photos(images_dir):
    """The JPEG photos of a folder, or the PNG crops `write_aligned_crops` writes, by name."""
    return sorted(glob.glob(f"{images_dir}/*.jpg") + glob.glob(f"{images_dir}/*.png"))


def load(files):
    def one(f):
        im = Image.open(f).convert("RGB").resize((SIDE, SIDE), Image.BILINEAR)
        return np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0

    return np.stack([one(f) for f in files])


class Batches(CalibrationDataReader):
    def __init__(self, images):
        self.it = iter({"image": images[i : i + 8]} for i in range(0, len(images), 8))

    def get_next(self):
        return next(self.it, None)


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def throughput(s, images, seconds=4.0):
    batch = images[:8]
    s.run(None, {"image": batch})
    start, n = time.time(), 0
    while time.time() - start < seconds:
        s.run(None, {"image": batch})
        n += len(batch)
    return n / (time.time() - start)


def cosines(a, b):
    """Row-wise cosine between two batches of vectors."""
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def compare(name, s, x, ref, fp32_speed):
    out = s.run(None, {"image": x})
    cos = cosines(ref[POOLED], out[POOLED])
    err = np.abs(ref[LANDMARKS] - out[LANDMARKS]).reshape(len(x), 21, 3)[:, :, :2]
    speed = throughput(s, x)
    print(
        f"| {name} | {cos.mean():.4f} | {cos.min():.4f} | {err.mean():.2f} | "
        f"{err.max():.1f} | {speed:.1f} | {speed / fp32_speed:.2f}x |",
        flush=True,
    )


def intermediates(model, names, images):
    """The tensors `names` of `model` (inner ones too) on `images`, by name."""
    probe = onnx.ModelProto.FromString(model.SerializeToString())
    for name in names:
        probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return dict(zip(names, session(probe.SerializeToString()).run(names, {"image": images})))


def equalise(model, cal, alpha=0.5, bounded=False, margin=1.5):
    """Per-tensor u8 activations lose channels whose range is far below the tensor's
    largest. Across each Conv -> ReLU6 -> Conv pair, channel c of the activation is divided
    by s_c = range_c^alpha / w_c^(1 - alpha) (range_c its calibrated range, w_c the largest
    weight that reads it) and the reader's weights multiplied by s_c: the same function,
    with ranges brought together (SmoothQuant's balance; Nagel et al. 2019 equalise
    weights only, which per-channel weights do not need). ReLU6's bound becomes 6 / s_c per
    channel, which Clip cannot hold, so it is Relu then Min against a per-channel bound.

    `bounded` keeps every Clip(0, 6) as it is, so ONNX Runtime still fuses it: a channel
    that reached 6 in calibration keeps s_c = 1, and any other is enlarged no further than
    its calibrated maximum times `margin` reaching 6 (s_c >= margin * max_c / 6), where the
    bound, unchanged, still does not bind."""
    g = model.graph
    init = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    readers = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    pairs = []
    for clip in (n for n in g.node if n.op_type == "Clip"):
        a, bs = producer.get(clip.input[0]), readers.get(clip.output[0], [])
        if a is not None and a.op_type == "Conv" and len(readers[a.output[0]]) == 1 \
                and len(bs) == 1 and bs[0].op_type == "Conv":
            pairs.append((a, clip, bs[0]))
    pre = intermediates(model, [a.output[0] for a, _, _ in pairs], cal)
    replaced = {}
    for a, clip, b in pairs:
        peak = pre[a.output[0]].max(axis=(0, 2, 3))
        act = np.maximum(np.clip(peak, 0, 6), 1e-6)
        wa, ba, wb = (numpy_helper.to_array(init[n]).copy() for n in (a.input[1], a.input[2], b.input[1]))
        depthwise = any(at.name == "group" and at.i > 1 for at in b.attribute)
        wmax = np.abs(wb).max(axis=(1, 2, 3) if depthwise else (0, 2, 3))
        s = (act ** alpha / np.maximum(wmax, 1e-8) ** (1 - alpha)).astype(np.float32)
        if bounded:
            s = np.where(peak >= 6, 1.0, np.maximum(s, margin * act / 6)).astype(np.float32)
        wa /= s[:, None, None, None]
        ba /= s
        wb *= s[:, None, None, None] if depthwise else s[None, :, None, None]
        for name, value in ((a.input[1], wa), (a.input[2], ba), (b.input[1], wb)):
            init[name].CopyFrom(numpy_helper.from_array(value, name))
        if bounded:
            continue
        bound = clip.name + "_bound"
        g.initializer.append(numpy_helper.from_array((6.0 / s).reshape(1, -1, 1, 1), bound))
        relu = clip.name + "_relu"
        replaced[clip.name] = [helper.make_node("Relu", [clip.input[0]], [relu], name=relu),
                               helper.make_node("Min", [relu, bound], [clip.output[0]], name=clip.name)]
    nodes = [m for n in g.node for m in replaced.get(n.name, [n])]
    del g.node[:]
    g.node.extend(nodes)
    return model, len(pairs)


def bias_correct(model, cal):
    """Rounding the weights shifts each convolution's output by (W_q - W) E[x] on average
    (Nagel et al. 2019): subtract that from the bias, E[x] the calibrated mean of each
    input channel, W_q the symmetric per-channel s8 rounding quantize_static will apply.
    Padding is ignored, so the stem (whose input is the zero-padded image) is left alone."""
    g = model.graph
    init = {i.name: i for i in g.initializer}
    convs = [n for n in g.node if n.op_type == "Conv" and len(n.input) == 3 and n.input[0] != "image"]
    inputs = intermediates(model, sorted({n.input[0] for n in convs}), cal)
    means = {k: v.mean(axis=(0, 2, 3)) for k, v in inputs.items()}
    for n in convs:
        w = numpy_helper.to_array(init[n.input[1]])
        b = numpy_helper.to_array(init[n.input[2]]).copy()
        scale = np.maximum(np.abs(w).max(axis=(1, 2, 3), keepdims=True), 1e-12) / 127.0
        dw = np.round(w / scale) * scale - w
        depthwise = any(at.name == "group" and at.i > 1 for at in n.attribute)
        mean = means[n.input[0]]
        b -= (dw.sum(axis=(1, 2, 3)) * mean if depthwise else dw.sum(axis=(2, 3)) @ mean).astype(np.float32)
        init[n.input[2]].CopyFrom(numpy_helper.from_array(b, n.input[2]))
    return model


def static_qdq(src, out, cal, excluded=(), ops=None, method=CalibrationMethod.MinMax,
               cache=None):
    extra = {"CalibPercentile": 99.99} if method == CalibrationMethod.Percentile else {}
    quantize_static(src, out, Batches(cal), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, op_types_to_quantize=ops,
                    nodes_to_exclude=list(excluded), calibrate_method=method,
                    extra_options=extra, calibration_cache_path=cache)


def pooled_cosines(s, x, ref):
    return cosines(ref[POOLED], s.run(None, {"image": x})[POOLED])


def mixed_precision(src, tmp, cal, sel, x, ref, fp32_speed, keep=(0, 1, 2, 4, 8, 12)):
    """Which operators cost the most accuracy in int8? Each quantised operator is left fp32
    in turn (the rest int8, the same calibrated ranges) and the gain in mean pooled cosine
    is measured on SEL, photos neither calibrated on nor evaluated; then the K operators of
    the largest gain stay fp32 and the rest int8, evaluated on the evaluation photos."""
    cache = tmp / "ranges.json"
    full = tmp / "mixed-all.onnx"
    static_qdq(src, full, cal, method=CalibrationMethod.Percentile, cache=cache)
    sel_ref = session(str(src)).run(None, {"image": sel})
    base = 1 - pooled_cosines(session(str(full)), sel, sel_ref).mean()
    quantised = {n.name for n in onnx.load(full).graph.node if n.op_type == "DequantizeLinear"}
    nodes = onnx.load(src).graph.node
    candidates = [n.name for n in nodes
                  if n.op_type in ("Conv", "Gemm", "Add", "ReduceMean", "Sigmoid", "Clip")]
    # The imported names are TensorFlow paths hundreds of characters long.
    short = {n.name: f"{n.op_type} #{i}" for i, n in enumerate(nodes)}
    gains = []
    for name in candidates:
        out = tmp / "mixed-probe.onnx"
        static_qdq(src, out, cal, [name], method=CalibrationMethod.Percentile, cache=cache)
        loss = 1 - pooled_cosines(session(str(out)), sel, sel_ref).mean()
        gains.append((base - loss, name))
    gains.sort(reverse=True)
    print(f"\nselection: {len(sel)} photos, all int8: mean 1 - cosine {base:.5f}; "
          f"{len(quantised)} DequantizeLinear nodes")
    for gain, name in gains[:16]:
        print(f"  {short[name]}: mean 1 - cosine falls by {gain:.5f} when left fp32")
    print("\n| operators left fp32 | pooled cosine mean | worst | landmark error px mean | "
          "worst | img/s | vs fp32 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    last = full
    for k in keep:
        excluded = [name for _, name in gains[:k]]
        last = tmp / f"mixed-{k}.onnx"
        static_qdq(src, last, cal, excluded, method=CalibrationMethod.Percentile, cache=cache)
        label = ", ".join(short[e] for e in excluded) or "none"
        compare(f"{k}: {label}", session(str(last)), x, ref, fp32_speed)
    return last


def main():
    images_dir = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    cal_n = int(sys.argv[3]) if len(sys.argv) > 3 else 128
    out_path = sys.argv[4] if len(sys.argv) > 4 else None
    files = photos(images_dir)
    assert len(files) >= n + cal_n, f"need {n + cal_n} photos in {images_dir}"
    x, cal = load(files[:n]), load(files[-cal_n:])
    fp32 = session(MODEL)
    ref = fp32.run(None, {"image": x})
    fp32_speed = throughput(fp32, x)
    print("| variant | pooled cosine mean | worst | landmark error px mean | worst | img/s | vs fp32 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| fp32 | 1 | 1 | 0 | 0 | {fp32_speed:.1f} | 1.00x |", flush=True)
    tmp = Path(tempfile.mkdtemp())
    for weights, label in [(QuantType.QUInt8, "u8"), (QuantType.QInt8, "s8")]:
        out = tmp / f"dynamic-{label}.onnx"
        quantize_dynamic(MODEL, out, op_types_to_quantize=["Conv"], per_channel=True,
                         weight_type=weights, reduce_range=label == "s8")
        compare(f"dynamic, Conv, {label} weights", session(str(out)), x, ref, fp32_speed)
    # Per-channel DequantizeLinear needs opset 13; the imported network is opset 11.
    onnx.save(version_converter.convert_version(onnx.load(MODEL), 13), tmp / "op13.onnx")
    quant_pre_process(tmp / "op13.onnx", tmp / "pre.onnx", skip_symbolic_shape=True)
    graph = onnx.load(tmp / "pre.onnx").graph
    stem_and_heads = [graph.node[0].name] + [n.name for n in graph.node if n.op_type == "Gemm"]
    variants = [
        ("all operators, MinMax", None, [], CalibrationMethod.MinMax),
        ("all operators, Percentile", None, [], CalibrationMethod.Percentile),
        ("Conv only, MinMax", ["Conv"], [], CalibrationMethod.MinMax),
        ("all but the stem and the Gemm heads, MinMax", None, stem_and_heads,
         CalibrationMethod.MinMax),
    ]
    for i, (label, ops, excluded, method) in enumerate(variants):
        out = tmp / f"static-{i}.onnx"
        static_qdq(tmp / "pre.onnx", out, cal, excluded, ops, method)
        compare(f"static QDQ, {label}", session(str(out)), x, ref, fp32_speed)
    equalised, pairs = equalise(onnx.load(tmp / "pre.onnx"), cal)
    onnx.save(equalised, tmp / "equalised.onnx")
    compare(f"equalised fp32 ({pairs} pairs), not quantised", session(str(tmp / "equalised.onnx")),
            x, ref, fp32_speed)
    for label, excluded in [("all operators", []),
                            ("all but the stem and the Gemm heads", stem_and_heads)]:
        static_qdq(tmp / "equalised.onnx", tmp / "equalised-qdq.onnx", cal, excluded)
        compare(f"static QDQ, {label}, MinMax, after equalisation",
                session(str(tmp / "equalised-qdq.onnx")), x, ref, fp32_speed)
    bounded, _ = equalise(onnx.load(tmp / "pre.onnx"), cal, bounded=True)
    onnx.save(bounded, tmp / "bounded.onnx")
    compare("bounded equalisation, fp32, not quantised", session(str(tmp / "bounded.onnx")),
            x, ref, fp32_speed)
    corrected = bias_correct(onnx.load(tmp / "bounded.onnx"), cal)
    onnx.save(corrected, tmp / "corrected.onnx")
    minmax, percentile = CalibrationMethod.MinMax, CalibrationMethod.Percentile
    for label, src, excluded, method in [
            ("all operators, MinMax, after bounded equalisation", "bounded", [], minmax),
            ("all but the stem and the Gemm heads, MinMax, after bounded equalisation",
             "bounded", stem_and_heads, minmax),
            ("all operators, 99.99th percentile, after bounded equalisation and bias "
             "correction", "corrected", [], percentile),
            # Last, so OUT gets it: the Gemm heads compute the landmarks that an artefact's
            # features read, and fp32 ones keep those within 0.2 px of fp32's.
            ("all but the stem and the Gemm heads, MinMax, after bounded equalisation and "
             "bias correction", "corrected", stem_and_heads, minmax)]:
        static_qdq(tmp / f"{src}.onnx", tmp / "bounded-qdq.onnx", cal, excluded, None, method)
        compare(f"static QDQ, {label}", session(str(tmp / "bounded-qdq.onnx")), x, ref,
                fp32_speed)
    if out_path:
        shutil.copy(tmp / "bounded-qdq.onnx", out_path)


def main_mixed():
    """`--mixed`: only the mixed-precision table, on the bounded, bias-corrected network."""
    args = [a for a in sys.argv[1:] if a != "--mixed"]
    images_dir, n = args[0], int(args[1]) if len(args) > 1 else 256
    cal_n = int(args[2]) if len(args) > 2 else 128
    out_path = args[3] if len(args) > 3 else None
    files = photos(images_dir)
    sel_n = 64
    assert len(files) >= n + sel_n + cal_n, f"need {n + sel_n + cal_n} photos in {images_dir}"
    x, sel, cal = load(files[:n]), load(files[n:n + sel_n]), load(files[-cal_n:])
    fp32 = session(MODEL)
    ref = fp32.run(None, {"image": x})
    fp32_speed = throughput(fp32, x)
    print(f"fp32: {fp32_speed:.1f} img/s", flush=True)
    tmp = Path(tempfile.mkdtemp())
    onnx.save(version_converter.convert_version(onnx.load(MODEL), 13), tmp / "op13.onnx")
    quant_pre_process(tmp / "op13.onnx", tmp / "pre.onnx", skip_symbolic_shape=True)
    bounded, _ = equalise(onnx.load(tmp / "pre.onnx"), cal, bounded=True)
    onnx.save(bias_correct(bounded, cal), tmp / "corrected.onnx")
    last = mixed_precision(tmp / "corrected.onnx", tmp, cal, sel, x, ref, fp32_speed)
    if out_path:
        shutil.copy(last, out_path)


if __name__ == "__main__":
    main_mixed() if "--mixed" in sys.argv else main()
