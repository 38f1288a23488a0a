#!/usr/bin/env python3
"""Latency of an exported ranking graph per (user, item) pair in ONNX Runtime.

    ort_bench.py DIR

DIR is what `cargo run --release -p shortlist-onnx --features tract --example bench_onnx`
writes
(`ranking.onnx`, `ranking.features.json`, `ranking.pairs.tsv`). Prints the file size
and the median time per pair over 15 rounds, one pair per call and in batches of
1000, with one intra-op thread (what a phone or a per-request server thread uses)
and with ONNX Runtime's default thread pool for the batch.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def rows(vocab, ids):
    oov = vocab["num_oov_buckets"]
    pos = {x: oov + k for k, x in enumerate(vocab["values"])}
    return np.array(
        [pos.get(x, 0 if oov <= 1 else fnv1a64(x) % oov) for x in ids], dtype=np.int64
    )


def median_us(rounds, reps, f):
    t = []
    for r in range(rounds):
        s = time.perf_counter()
        for k in range(reps):
            f(r * reps + k)
        t.append((time.perf_counter() - s) * 1e6 / reps)
    return sorted(t)[rounds // 2]


def main():
    d = Path(sys.argv[1] if len(sys.argv) > 1 else "target/onnx-bench")
    meta = json.loads((d / "ranking.features.json").read_text())
    spec = meta["feature_spec"]
    lines = [l.split("\t") for l in (d / "ranking.pairs.tsv").read_text().splitlines()]
    users = rows(spec["user_id"], [l[0] for l in lines])
    items = rows(spec["item_id"], [l[1] for l in lines])
    n = len(users)
    path = d / "ranking.onnx"
    print(f"ranking.onnx: {path.stat().st_size / 1e6:.2f} MB, onnxruntime {ort.__version__}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    one = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    pool = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # Owned one-element arrays (a view into a larger array costs the call ~10 µs more).
    single = [{"user": users[k : k + 1].copy(), "item": items[k : k + 1].copy()} for k in range(n)]
    batches = [
        {"user": users[s : s + 1000], "item": items[s : s + 1000]} for s in range(0, n - 999, 1000)
    ]
    # The Python call itself (argument conversion, output array) is part of the figure;
    # its cost alone is about that of `run` on an empty graph (a few µs).
    t1 = median_us(15, 400, lambda k: one.run(None, single[k % n]))
    # Without the Python conversions: inputs and output bound once (one fixed pair).
    binding = one.io_binding()
    binding.bind_cpu_input("user", single[0]["user"])
    binding.bind_cpu_input("item", single[0]["item"])
    binding.bind_output("prediction")
    tio = median_us(15, 400, lambda k: one.run_with_iobinding(binding))
    tb = median_us(15, 4, lambda k: one.run(None, batches[k % len(batches)])) / 1000
    tp = median_us(15, 4, lambda k: pool.run(None, batches[k % len(batches)])) / 1000
    # What the Python call alone costs: a one-node graph (Identity) on the same input.
    base = None
    try:
        from onnx import TensorProto, helper

        g = helper.make_graph(
            [helper.make_node("Identity", ["user"], ["y"])],
            "identity",
            [helper.make_tensor_value_info("user", TensorProto.INT64, ["N"])],
            [helper.make_tensor_value_info("y", TensorProto.INT64, ["N"])],
        )
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        m.ir_version = 7
        ident = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        base = median_us(15, 400, lambda k: ident.run(None, {"user": single[k % n]["user"]}))
    except ImportError:
        pass
    print("latency per pair (median of 15 rounds):")
    print(f"  ONNX Runtime, one pair per call, 1 thread   {t1:8.2f} µs")
    if base is not None:
        print(f"    (a one-node graph's call: {base:.2f} µs)")
    print(f"  ONNX Runtime, one pair, I/O bound once       {tio:8.2f} µs")
    print(f"  ONNX Runtime, batch of 1000, 1 thread       {tb:8.3f} µs")
    print(f"  ONNX Runtime, batch of 1000, default pool   {tp:8.3f} µs")


if __name__ == "__main__":
    main()
