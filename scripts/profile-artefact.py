#!/usr/bin/env python3
"""Where an artefact's time goes: ONNX Runtime's own profiler, summed per operator type.

Usage: .venv-hand/bin/python scripts/profile-artefact.py MODEL [RUNS] [BATCH] [THREADS]

Runs the artefact on random images (the values do not change the arithmetic) with the
graph optimisations the server uses (all levels), and prints, per operator type of the
optimised graph, the share of the kernel time, its milliseconds per run and node count.
`.venv-hand` is the virtual environment scripts/setup.sh makes; it holds the same ONNX
Runtime (1.32) that the server loads.
"""

import collections
import json
import os
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    model = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else os.cpu_count()

    out_dir = tempfile.mkdtemp(prefix="handmatch-profile-")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(out_dir, "profile")
    opts.optimized_model_filepath = os.path.join(out_dir, "optimised.onnx")
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])

    inp = session.get_inputs()[0]
    shape = [batch if not isinstance(d, int) else d for d in inp.shape]
    rng = np.random.default_rng(0)
    if inp.type == "tensor(uint8)":  # the service's artefacts take uint8 RGB crops
        x = rng.integers(0, 256, shape, dtype=np.uint8)
    else:
        x = rng.standard_normal(shape).astype(np.float32)
    session.run(None, {inp.name: x})  # warm-up, excluded below
    start = time.perf_counter()
    for _ in range(runs):
        session.run(None, {inp.name: x})
    wall = (time.perf_counter() - start) / runs
    trace = session.end_profiling()

    with open(trace) as f:
        events = json.load(f)
    per_op = collections.defaultdict(float)
    nodes = collections.defaultdict(set)
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        op = e["args"].get("op_name", "?")
        per_op[op] += e["dur"]
        nodes[op].add(e["name"])
    # The profiler also saw the warm-up run, hence runs + 1 below.
    total = sum(per_op.values())
    print(f"{model}: batch {batch}, {threads} threads, {runs} runs, "
          f"{wall * 1e3:.1f} ms per run ({batch / wall:.2f} img/s)")
    print(f"{'operator':<28}{'share':>8}{'ms/run':>10}{'nodes':>7}")
    for op, us in sorted(per_op.items(), key=lambda kv: -kv[1]):
        print(f"{op:<28}{us / total:>8.1%}{us / 1e3 / (runs + 1):>10.2f}{len(nodes[op]):>7}")
    print(f"optimised graph: {opts.optimized_model_filepath}")


if __name__ == "__main__":
    main()
