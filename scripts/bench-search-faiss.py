#!/usr/bin/env python3
"""FAISS IndexFlatIP on the same kind of data as `handmatch-bench search`: N random
L2-normalised float32 rows of D values, Q random queries, one at a time and in batches of
B, on T threads. Prints a table row and a `result` line that scripts/bench-search.sh reads."""
import argparse
import time

import faiss
import numpy as np


def unit(rng, n, d):
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--gallery", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    faiss.omp_set_num_threads(a.threads)
    rng = np.random.default_rng(7)
    index = faiss.IndexFlatIP(a.dim)
    index.add(unit(rng, a.gallery, a.dim))
    queries = unit(rng, a.queries, a.dim)
    index.search(queries[:1], 10)  # warm-up
    t = time.perf_counter()
    for i in range(a.queries):
        index.search(queries[i : i + 1], 10)
    single = a.queries / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(0, a.queries, a.batch):
        index.search(queries[i : i + a.batch], 10)
    batched = a.queries / (time.perf_counter() - t)
    print(f"faiss {faiss.__version__} IndexFlatIP {a.gallery} x {a.dim}, {a.threads} thread(s)")
    print(f"result engine=faiss single_qps={single:.2f} batch={a.batch} batch_qps={batched:.2f}")


if __name__ == "__main__":
    main()
