#!/usr/bin/env python3
"""Check exported shortlist ONNX graphs in ONNX Runtime against shortlist's own outputs.

    ort_check.py DIR

DIR holds what `crates/onnx/tests/onnxruntime.rs` writes: for each model NAME,
`NAME.features.json` (the export's JSON: graphs, vocabularies, index rule) and its
graphs, and a reference file written by shortlist itself:

* ranking: `NAME.pairs.tsv`, lines `user_id<TAB>item_id<TAB>prediction`;
* retrieval: `NAME.vectors.tsv`, lines `user|item<TAB>id<TAB>v1,v2,...`, and
  `NAME.new_items.jsonl`, lines `{"features": {column: raw value}, "vector": [...]}`
  for the new-item graph (`candidate_features`), when the model has one.

Raw ids are mapped to input rows here, from the JSON alone (the documented rule:
position in `values` + num_oov_buckets, else FNV-1a 64 mod num_oov_buckets), so this
also checks that a caller can do it without shortlist. Exit status 0 when every
prediction is within 1e-5 relative (towers: equal; new items: within 1e-5 of each
vector's largest component), 1 otherwise; 77 when onnxruntime
is missing. Prints one line per model.
"""

import json
import sys
from pathlib import Path

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:  # the caller reports the skip
    print(f"skipped: {e} (pip install onnxruntime onnx)")
    sys.exit(77)

TOLERANCE = 1e-5


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class Vocab:
    def __init__(self, v):
        self.oov = v["num_oov_buckets"]
        self.rows = {x: self.oov + k for k, x in enumerate(v["values"])}

    def row(self, raw):
        r = self.rows.get(raw)
        if r is not None:
            return r
        return 0 if self.oov <= 1 else fnv1a64(raw) % self.oov


def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def check_ranking(d, meta, vocab, name):
    (graph,) = meta["graphs"]
    sess = session(d / graph["file"])
    users, items, want = [], [], []
    for line in (d / f"{name}.pairs.tsv").read_text().splitlines():
        u, i, p = line.split("\t")
        users.append(vocab["user_id"].row(u))
        items.append(vocab["item_id"].row(i))
        want.append(float(p))
    want = np.array(want, dtype=np.float32)
    (got,) = sess.run(
        None,
        {"user": np.array(users, dtype=np.int64), "item": np.array(items, dtype=np.int64)},
    )
    rel = np.abs(got.astype(np.float64) - want) / np.maximum(np.abs(want), 1e-3)
    worst = float(rel.max())
    ok = worst <= TOLERANCE and got.shape == want.shape
    oov = sum(1 for u in users if u < vocab["user_id"].oov) + sum(
        1 for i in items if i < vocab["item_id"].oov
    )
    print(
        f"{name}: {len(want)} pairs ({oov} unknown ids), worst relative difference "
        f"{worst:.2e} {'ok' if ok else 'FAILED'}"
    )
    return ok


def check_towers(d, meta, vocab, name):
    sessions = {g["role"]: session(d / g["file"]) for g in meta["graphs"]}
    ok = True
    rows = {"user": [], "item": []}
    want = {"user": [], "item": []}
    for line in (d / f"{name}.vectors.tsv").read_text().splitlines():
        side, raw, vec = line.split("\t")
        rows[side].append(vocab[f"{side}_id"].row(raw))
        want[side].append([float(x) for x in vec.split(",")])
    for side, role, inp in (("user", "query", "user"), ("item", "candidate", "item")):
        (got,) = sessions[role].run(None, {inp: np.array(rows[side], dtype=np.int64)})
        w = np.array(want[side], dtype=np.float32)
        same = got.shape == w.shape and bool((got == w).all())
        ok &= same
        print(f"{name} {role} tower: {len(w)} ids, {'equal' if same else 'DIFFERENT'}")
    return ok


def tokens(text, max_tokens):
    """The tokenizer the exported JSON states: keep alphanumeric characters and
    whitespace, lower-case, split on whitespace, the first max_tokens (0: all)."""
    clean = "".join(c for c in text if c.isalnum() or c.isspace()).lower()
    t = clean.split()
    return t if max_tokens == 0 else t[:max_tokens]


def feature_inputs(meta, graph, items):
    """The new-item graph's inputs for raw side features, by the rules in the JSON."""
    specs = {f["name"]: f["transform"] for f in meta["feature_spec"]["item_features"]}
    feeds = {}
    for inp in graph["inputs"]:
        name = inp["name"]
        t = specs[name]
        raw = [it.get(name) for it in items]
        if inp["type"] == "float64":
            feeds[name] = np.array([np.nan if v is None else v for v in raw], dtype=np.float64)
            continue
        vocab = Vocab(t["vocab"])
        bags = []
        for v in raw:
            if v is None:
                labels = [""] if t["type"] == "categorical" else []
            elif isinstance(v, list):
                labels = v
            elif t["type"] == "text":
                labels = tokens(v, t["tokenizer"]["max_tokens"])
            else:
                labels = [v]
            bags.append([vocab.row(x) for x in labels])
        width = max([len(b) for b in bags] + [1])
        rows = np.full((len(bags), width), -1, dtype=np.int64)
        for k, b in enumerate(bags):
            rows[k, : len(b)] = b
        feeds[name] = rows
    return feeds


def check_new_items(d, meta, name):
    graph = next((g for g in meta["graphs"] if g["role"] == "candidate_features"), None)
    path = d / f"{name}.new_items.jsonl"
    if graph is None or not path.exists():
        return True
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    items = [x["features"] for x in lines]
    want = np.array([x["vector"] for x in lines], dtype=np.float64)
    (got,) = session(d / graph["file"]).run(None, feature_inputs(meta, graph, items))
    scale = np.maximum(np.abs(want).max(axis=1, keepdims=True), 1e-3)
    worst = float((np.abs(got.astype(np.float64) - want) / scale).max())
    ok = got.shape == want.shape and worst <= TOLERANCE
    print(
        f"{name} candidate_features tower: {len(items)} new items from raw side features, "
        f"worst difference {worst:.2e} of the largest component {'ok' if ok else 'FAILED'}"
    )
    return ok


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    d = Path(sys.argv[1])
    ok = True
    for f in sorted(d.glob("*.features.json")):
        name = f.name[: -len(".features.json")]
        meta = json.loads(f.read_text())
        spec = meta["feature_spec"]
        vocab = {k: Vocab(spec[k]) for k in ("user_id", "item_id")}
        if meta["kind"] == "ranking":
            ok &= check_ranking(d, meta, vocab, name)
        else:
            ok &= check_towers(d, meta, vocab, name)
            ok &= check_new_items(d, meta, name)
    print(f"onnxruntime {ort.__version__}: {'all equal' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
