#!/usr/bin/env python3
"""Convert MediaPipe's hand_landmark_full.tflite to the ONNX model handmatch loads.

Run by import.sh inside its throw-away venv; see README.md beside this file.

  convert.py --tflite X.tflite --out Y.onnx           convert, check, write Y.onnx
  convert.py --tflite X.tflite --out Y.onnx --record  same, but first (re)write
                                                      reference.json from the TFLite
                                                      interpreter (needs ai-edge-litert)
"""
import argparse
import hashlib
import json
import logging
import os
import sys
import tempfile
import warnings

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "fixture-hand.png")
REFERENCE = os.path.join(HERE, "reference.json")

SIZE = 224
POOLED_DIM = 1152
POOL_NODE = "global_average_pooling2d"
# Our output name -> the TFLite dense layer that feeds it (stable across converter runs,
# unlike the Identity_N tensor names).
HEADS = {
    "landmarks": "conv_landmarks",
    "presence": "conv_handflag",
    "handedness": "conv_handedness",
    "world_landmarks": "conv_world_landmarks",
}
PROBABILITIES = ("presence", "handedness")
OUTPUT_ORDER = ["landmarks", "presence", "handedness", "world_landmarks", "pooled"]

# Reference check tolerances (absolute). TFLite and ONNX Runtime agree to ~1e-4 px on
# this model; these leave room for other CPUs' kernels while still catching a wrong
# layout, a missing sigmoid or a bad rewrite, all of which are off by whole pixels.
TOL = {
    "landmarks": 0.5,          # px of the 224 input (z too)
    "presence": 1e-3,
    "handedness": 1e-3,
    "world_landmarks": 1e-3,   # metres
    "pooled_head": 1e-3,
    "pooled_l2_rel": 1e-3,
}
# Rows of a batched run must match single runs; only kernel blocking differs.
BATCH_TOL = 1e-4

# Preprocessing of the fixture. It is drawn like an 11k Hands photo (fingers down,
# near-white background); the model wants fingers up, filling a square crop.
PREPROCESS = {
    "rotate_degrees_ccw": 180,
    "background_threshold": 230,   # pixel is background when min(R,G,B) >= this
    "margin": 0.15,                # of the box's width/height, on each side
    "pad": "centre on a white square",
    "resize": "PIL bilinear to 224x224",
    "scale": "RGB / 255, float32, NCHW",
}


def preprocess(path, rotate=PREPROCESS["rotate_degrees_ccw"]):
    """Returns float32 [3,224,224] in [0,1]."""
    im = Image.open(path).convert("RGB")
    if rotate % 360:
        im = im.rotate(rotate, expand=True)
    a = np.asarray(im)
    ys, xs = np.nonzero(a.min(axis=2) < PREPROCESS["background_threshold"])
    if len(xs):
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        mx = int(round((x1 - x0) * PREPROCESS["margin"]))
        my = int(round((y1 - y0) * PREPROCESS["margin"]))
        im = im.crop((max(0, x0 - mx), max(0, y0 - my),
                      min(im.width, x1 + mx), min(im.height, y1 + my)))
    side = max(im.size)
    sq = Image.new("RGB", (side, side), (255, 255, 255))
    sq.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
    sq = sq.resize((SIZE, SIZE), Image.BILINEAR)
    return (np.asarray(sq, dtype=np.float32) / 255.0).transpose(2, 0, 1)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- graph surgery

def rename_tensor(graph, old, new):
    for n in graph.node:
        n.input[:] = [new if x == old else x for x in n.input]
        n.output[:] = [new if x == old else x for x in n.output]
    for vi in list(graph.output) + list(graph.input):
        if vi.name == old:
            vi.name = new


def set_batch(value_info, dim="N"):
    d0 = value_info.type.tensor_type.shape.dim[0]
    d0.ClearField("dim_value")
    d0.dim_param = dim


def surgery(model):
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    inits = {t.name: t for t in g.initializer}
    notes = []

    # The converter folds TFLite's fp16 weights + Dequantize into fp32 initialisers;
    # make sure none slipped through, since ORT has no fp16 Conv on CPU.
    for t in g.initializer:
        if t.data_type == TensorProto.FLOAT16:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name))
            notes.append(f"fp16 initialiser {t.name} -> fp32")

    # Map the converter's Identity_N outputs to our names via the dense layer behind them.
    old_outputs = [o.name for o in g.output]
    mapping = {}
    for name in old_outputs:
        node = producer[name]
        gemm = producer[node.input[0]] if node.op_type == "Sigmoid" else node
        weights = " ".join(gemm.input[1:] + [gemm.name])
        hits = [k for k, layer in HEADS.items() if f"/{layer}/" in weights]
        if gemm.op_type != "Gemm" or len(hits) != 1:
            sys.exit(f"convert: cannot identify output {name} ({node.op_type} <- {gemm.op_type})")
        mapping[name] = (hits[0], node.op_type == "Sigmoid")
    renamed = {old: new for old, (new, _) in mapping.items()}
    if sorted(k for k, _ in mapping.values()) != sorted(HEADS):
        sys.exit(f"convert: unexpected outputs {mapping}")

    new_outputs = {}
    for old, (new, has_sigmoid) in mapping.items():
        vi = next(o for o in g.output if o.name == old)
        g.output.remove(vi)
        if new in PROBABILITIES and not has_sigmoid:
            g.node.append(helper.make_node("Sigmoid", [old], [new], name=f"{new}_sigmoid"))
            notes.append(f"{new}: added Sigmoid (converter output was a logit)")
        else:
            rename_tensor(g, old, new)
        new_outputs[new] = helper.make_tensor_value_info(new, TensorProto.FLOAT, [1, vi.type.tensor_type.shape.dim[1].dim_value])

    # Pooled features: the global average pool feeding all four heads.
    pools = [n for n in g.node if POOL_NODE in n.name]
    if len(pools) != 1:
        sys.exit(f"convert: expected one {POOL_NODE} node, found {len(pools)}")
    # Flatten makes [N,1152] whatever keepdims the converter chose.
    g.node.append(helper.make_node("Flatten", [pools[0].output[0]], ["pooled"], name="pooled_flatten", axis=1))
    new_outputs["pooled"] = helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [1, POOLED_DIM])
    g.output.extend(new_outputs[k] for k in OUTPUT_ORDER)

    # Input: NCHW named `image`. tflite2onnx already propagates NHWC->NCHW through the
    # graph; if a future version does not, put the transpose in front.
    (inp,) = g.input
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    if dims == [1, 3, SIZE, SIZE]:
        rename_tensor(g, inp.name, "image")
    elif dims == [1, SIZE, SIZE, 3]:
        old = inp.name
        g.input.remove(inp)
        g.input.append(helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, SIZE, SIZE]))
        g.node.insert(0, helper.make_node("Transpose", ["image"], [old], name="image_to_nhwc", perm=[0, 2, 3, 1]))
        notes.append("input was NHWC: added Transpose from NCHW `image`")
    else:
        sys.exit(f"convert: unexpected input shape {dims}")

    # Dynamic batch: TFLite bakes batch 1 into shapes. Reshape targets that start with 1
    # would pin it again; 0 copies the incoming (batch) dim instead.
    for n in g.node:
        if n.op_type == "Reshape" and n.input[1] in inits:
            shape = numpy_helper.to_array(inits[n.input[1]]).copy()
            if shape.size and shape[0] == 1:
                shape[0] = 0
                inits[n.input[1]].CopyFrom(numpy_helper.from_array(shape, n.input[1]))
                notes.append(f"Reshape {n.name}: leading 1 -> 0")
    for vi in list(g.input) + list(g.output):
        set_batch(vi)
    # The converter's value_info pins batch 1 and comes in set order (run-to-run
    # different bytes); drop it and sort initialisers so the output is reproducible.
    del g.value_info[:]
    sorted_inits = sorted(g.initializer, key=lambda t: t.name)
    del g.initializer[:]
    g.initializer.extend(sorted_inits)

    model.producer_name = "handmatch scripts/hand-landmarks/convert.py"
    model.producer_version = "1"
    model.doc_string = (
        "MediaPipe hand_landmark_full (mediapipe 0.10.14) converted with tflite2onnx. "
        "image: float32 [N,3,224,224] RGB in [0,1]. "
        "landmarks [N,63]: 21 x (x,y,z), x/y in pixels of the 224 input, z same scale, "
        "relative to the wrist. presence [N,1]: probability a hand is present. "
        "handedness [N,1]: probability the hand is a right hand as seen in the (unmirrored) "
        "image (MediaPipe Tasks' label 'Right'; legacy Solutions, which assume a mirrored "
        "selfie image, label the same score 'Left'). world_landmarks [N,63]: metres, "
        "origin near the hand's centre. pooled [N,1152]: global-average-pooled features."
    )
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model, notes, renamed


# ---------------------------------------------------------------- running

def session(path):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def run_onnx(sess, x):
    out = sess.run(OUTPUT_ORDER, {"image": x})
    return dict(zip(OUTPUT_ORDER, out))


def run_tflite(tflite_path, x):
    from ai_edge_litert.interpreter import Interpreter  # only for --record

    # preserve_all_tensors keeps the pooled intermediate readable after invoke().
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "debugging only": exactly what this is
        it = Interpreter(model_path=tflite_path, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    (inp,) = it.get_input_details()
    it.set_tensor(inp["index"], x.transpose(0, 2, 3, 1).copy())
    it.invoke()
    by_name = {d["name"]: d["index"] for d in it.get_tensor_details()}
    out = {d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()}
    pooled = [i for n, i in by_name.items() if POOL_NODE in n and n.endswith("/Mean")]
    if len(pooled) != 1:
        sys.exit(f"convert: cannot find the {POOL_NODE} tensor in the TFLite model")
    out["pooled"] = it.get_tensor(pooled[0]).reshape(1, -1)
    return out


def summarise(o):
    pooled = o["pooled"][0].astype(np.float64)
    return {
        "landmarks": [float(v) for v in o["landmarks"][0]],
        "presence": float(o["presence"][0, 0]),
        "handedness": float(o["handedness"][0, 0]),
        "world_landmarks": [float(v) for v in o["world_landmarks"][0]],
        "pooled_head": [float(v) for v in pooled[:16]],
        "pooled_l2": float(np.linalg.norm(pooled)),
    }


def compare(got, ref):
    """Max abs diff per field (relative for the L2 norm)."""
    d = {}
    for k in ("landmarks", "world_landmarks", "pooled_head"):
        d[k] = float(np.abs(np.asarray(got[k]) - np.asarray(ref[k])).max())
    for k in ("presence", "handedness"):
        d[k] = abs(got[k] - ref[k])
    d["pooled_l2_rel"] = abs(got["pooled_l2"] - ref["pooled_l2"]) / ref["pooled_l2"]
    return d


def record(tflite_path, onnx_path, tflite_sha, renamed):
    """Writes reference.json from the original TFLite model run by LiteRT.

    renamed maps TFLite output names (which tflite2onnx keeps) to ours."""
    from importlib.metadata import version

    sess = session(onnx_path)
    rotations = {}
    for rot in (0, 90, 180, 270):
        x = preprocess(FIXTURE, rot)[None]
        o = run_onnx(sess, x)
        rotations[str(rot)] = round(float(o["presence"][0, 0]), 4)
    x = preprocess(FIXTURE)[None]
    onnx_out = run_onnx(sess, x)
    tfl = {renamed.get(k, k): v for k, v in run_tflite(tflite_path, x).items()}
    ref = summarise(tfl)
    full = {k: float(np.abs(tfl[k] - onnx_out[k]).max()) for k in OUTPUT_ORDER}
    doc = {
        "fixture": os.path.basename(FIXTURE),
        "fixture_sha256": sha256(FIXTURE),
        "preprocessing": PREPROCESS,
        "source": {
            "package": "mediapipe==0.10.14",
            "member": "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
            "tflite_sha256": tflite_sha,
        },
        "recorded_with": f"TFLite interpreter of ai-edge-litert {version('ai-edge-litert')} on the original model",
        "presence_by_rotation_ccw": rotations,
        "tflite_vs_onnx_max_abs_diff": full,
        "outputs": ref,
    }
    tmp = REFERENCE + ".partial"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, REFERENCE)
    print(f"convert: recorded {REFERENCE} from TFLite; TFLite vs ONNX max abs diff {full}", file=sys.stderr)
    print(f"convert: presence by rotation {rotations}", file=sys.stderr)


def check(onnx_path, tflite_sha):
    with open(REFERENCE) as f:
        ref = json.load(f)
    if ref["source"]["tflite_sha256"] != tflite_sha:
        sys.exit("convert: reference.json was recorded for a different tflite file")
    if ref["fixture_sha256"] != sha256(FIXTURE):
        sys.exit("convert: fixture-hand.png changed since reference.json was recorded")
    sess = session(onnx_path)
    x1 = preprocess(FIXTURE, ref["preprocessing"]["rotate_degrees_ccw"])[None]
    got = summarise(run_onnx(sess, x1))
    diff = compare(got, ref["outputs"])
    bad = {k: (v, TOL[k]) for k, v in diff.items() if not v <= TOL[k]}
    if bad:
        sys.exit(f"convert: REFERENCE CHECK FAILED (diff, tolerance): {bad}")
    if not got["presence"] > 0.5:
        sys.exit(f"convert: fixture presence {got['presence']:.3f} <= 0.5")
    print(f"convert: reference check ok, presence {got['presence']:.4f}, max diffs {diff}", file=sys.stderr)

    # Dynamic batch: each row of a batch of 3 must equal its own batch-1 run.
    rng = np.random.default_rng(0)
    xs = np.concatenate([x1, preprocess(FIXTURE, 0)[None],
                         rng.random((1, 3, SIZE, SIZE), dtype=np.float32)])
    batched = run_onnx(sess, xs)
    worst = 0.0
    for i in range(len(xs)):
        single = run_onnx(sess, xs[i:i + 1])
        for k in OUTPUT_ORDER:
            if batched[k].shape[1:] != single[k].shape[1:] or batched[k].shape[0] != len(xs):
                sys.exit(f"convert: batch shape mismatch for {k}: {batched[k].shape}")
            worst = max(worst, float(np.abs(batched[k][i] - single[k][0]).max()))
    if not worst <= BATCH_TOL:
        sys.exit(f"convert: batch-3 rows differ from batch-1 runs by {worst}")
    print(f"convert: batch 3 vs batch 1 max abs diff {worst:.2e}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tflite", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()

    # tflite2onnx warns once per fp16 tensor before folding them into fp32; noise.
    logging.getLogger("tflite2onnx").setLevel(logging.ERROR)
    import tflite2onnx

    tflite_sha = sha256(args.tflite)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".convert-") as tmp:
        raw = os.path.join(tmp, "raw.onnx")
        tflite2onnx.convert(args.tflite, raw)
        model, notes, renamed = surgery(onnx.load(raw))
        for n in notes:
            print(f"convert: {n}", file=sys.stderr)
        staged = os.path.join(tmp, "model.onnx")
        onnx.save(model, staged)
        if args.record:
            record(args.tflite, staged, tflite_sha, renamed)
        check(staged, tflite_sha)
        os.replace(staged, args.out)
    print(f"convert: wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
