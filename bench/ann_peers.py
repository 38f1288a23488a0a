#!/usr/bin/env python3
"""Peers for the shortlist ANN benchmark: hnswlib (ip space) and faiss (HNSWFlat inner
product, IVF-PQ re-ranked exactly) on the vectors `ann_bench` wrote, then a
side-by-side summary with ann_bench's own rows (`ours.json`, same directory).

    python3 bench/ann_peers.py target/ann-bench/topics [--quick] [--libs hnswlib,faiss-hnsw]

Reads items.npy, queries.npy, gt.npy (exact top-K per query, K = the largest k
ann_bench measured), excl{10,50,90}.npy (one mask row, 1 = excluded) and
gt_excl*.npy (exact top-10 of the first queries under that mask).

Tasks, as in ann_bench: recall@k and queries/second at k = 10, 100, 1000 (the k
present in gt.npy), and recall@10 under 10 / 50 / 90 % exclusion (faiss: a prebuilt
IDSelectorBitmap; hnswlib: its filter callback, a Python predicate per visited node,
its only filter API). Every setting answers the queries single-threaded, as one batch
(no per-query Python overhead, which favours the peers slightly); builds use all
cores, M 16 / ef_construction 128 for both HNSW libraries.

Summary: for each task, each library's best queries/second among the settings whose
recall reaches 0.95 (and 0.90), and shortlist's ratio to the best peer, by the wall
clock and by CPU time (process time: on a loaded machine the wall clock also counts the
time other processes held the cores). Writes peers.json next to the inputs.

Needs numpy, faiss-cpu and hnswlib (pip install faiss-cpu hnswlib numpy), e.g. in a
virtual environment; the script does not install anything.
"""
import json
import os
import sys
import time

import numpy as np

try:
    import faiss
    import hnswlib
except ImportError as e:  # pragma: no cover - a setup problem, said plainly
    sys.exit(f"ann_peers.py: {e}; install the peers first: pip install faiss-cpu hnswlib numpy")

EFS = [16, 32, 64, 128, 256, 512, 1024, 2048]
NPROBES = [4, 8, 16, 32, 64, 128, 256]


def recall(got, gt, k):
    hits = 0
    total = 0
    for g, t in zip(got, gt):
        t = [x for x in t[:k].tolist() if x >= 0]
        total += len(t)
        hits += len(set(g[:k].tolist()) & set(t))
    return hits / max(total, 1)


def timed(search, queries):
    """(ids, queries per second of wall clock, queries per second of CPU time)."""
    search(queries[: min(50, len(queries))])  # warm-up
    c = time.process_time()
    t = time.perf_counter()
    ids = search(queries)
    wall = time.perf_counter() - t
    cpu = time.process_time() - c
    return ids, len(queries) / wall, len(queries) / max(cpu, 1e-9)


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        sys.exit(__doc__)
    d = args[0]
    quick = "--quick" in sys.argv
    libs = {"hnswlib", "faiss-hnsw", "faiss-ivfpq"}
    for a in sys.argv[1:]:
        if a.startswith("--libs="):
            libs = set(a.split("=", 1)[1].split(","))
    efs = [16, 64, 256, 1024] if quick else EFS
    xb = np.load(os.path.join(d, "items.npy"))
    xq = np.load(os.path.join(d, "queries.npy"))
    gt = np.load(os.path.join(d, "gt.npy"))
    n, dim = xb.shape
    kmax = gt.shape[1]
    ks = [k for k in (10, 100, 1000) if k <= kmax]
    filt = []
    for pct in (10, 50, 90):
        path = os.path.join(d, f"excl{pct}.npy")
        if os.path.exists(path):
            mask = np.load(path)[0].astype(bool)
            filt.append((pct, mask, np.load(os.path.join(d, f"gt_excl{pct}.npy"))))
    threads = os.cpu_count()
    print(f"# peers: n={n} dim={dim} queries={len(xq)} k={ks} build threads={threads}, query threads=1", flush=True)
    rows = []

    def add(lib, setting, task, rec, timing):
        qps, cpu_qps = timing
        rows.append({"library": lib, "setting": setting, "task": task, "recall": rec, "qps": qps, "cpu_qps": cpu_qps})
        print(f"| {lib} | {setting} | {task} | {rec:.4f} | {qps:.0f} | {cpu_qps:.0f} |", flush=True)

    if "hnswlib" in libs:
        r0 = rss_mib()
        t = time.perf_counter()
        p = hnswlib.Index(space="ip", dim=dim)
        p.init_index(max_elements=n, ef_construction=128, M=16)
        p.set_num_threads(threads)
        p.add_items(xb, np.arange(n))
        print(f"# hnswlib M=16 efC=128: build {time.perf_counter() - t:.1f}s, RSS +{rss_mib() - r0:.0f} MiB", flush=True)
        p.set_num_threads(1)
        for ef in efs:
            for k in ks:
                if ef < k:
                    continue
                p.set_ef(ef)
                ids, *qps = timed(lambda q, k=k: p.knn_query(q, k=k)[0], xq)
                add("hnswlib", f"ef={ef}", f"k={k}", recall(ids, gt, k), qps)
            for pct, mask, fgt in filt:
                allowed = (~mask).tolist()
                p.set_ef(ef)
                ids, *qps = timed(
                    lambda q: p.knn_query(q, k=10, num_threads=1, filter=allowed.__getitem__)[0],
                    xq[: len(fgt)],
                )
                add("hnswlib", f"ef={ef}", f"excl={pct}", recall(ids, fgt, 10), qps)
        del p

    bitmaps = [(pct, np.packbits(~mask, bitorder="little"), fgt) for pct, mask, fgt in filt]
    if "faiss-hnsw" in libs:
        faiss.omp_set_num_threads(threads)
        r0 = rss_mib()
        t = time.perf_counter()
        h = faiss.IndexHNSWFlat(dim, 16, faiss.METRIC_INNER_PRODUCT)
        h.hnsw.efConstruction = 128
        h.add(xb)
        print(f"# faiss HNSWFlat M=16 efC=128: build {time.perf_counter() - t:.1f}s, RSS +{rss_mib() - r0:.0f} MiB", flush=True)
        faiss.omp_set_num_threads(1)
        for ef in efs:
            for k in ks:
                if ef < k:
                    continue
                h.hnsw.efSearch = ef
                ids, *qps = timed(lambda q, k=k: h.search(q, k)[1], xq)
                add("faiss-hnsw", f"ef={ef}", f"k={k}", recall(ids, gt, k), qps)
            for pct, bm, fgt in bitmaps:
                sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bm))
                params = faiss.SearchParametersHNSW(sel=sel, efSearch=ef)
                ids, *qps = timed(lambda q: h.search(q, 10, params=params)[1], xq[: len(fgt)])
                add("faiss-hnsw", f"ef={ef}", f"excl={pct}", recall(ids, fgt, 10), qps)
        del h

    if "faiss-ivfpq" in libs:
        # nlist ~ 4 sqrt(n), 16 sub-quantizers x 8 bits, re-ranked exactly
        # (IndexRefineFlat, k_factor 4) so recall is not capped by PQ.
        faiss.omp_set_num_threads(threads)
        nlist = int(4 * np.sqrt(n))
        t = time.perf_counter()
        ivf = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, 16, 8, faiss.METRIC_INNER_PRODUCT)
        ref = faiss.IndexRefineFlat(ivf)
        ref.train(xb[np.random.default_rng(0).choice(n, min(n, 100 * nlist), replace=False)])
        ref.add(xb)
        ref.k_factor = 4
        print(f"# faiss IVF{nlist},PQ16x8 + refine: build {time.perf_counter() - t:.1f}s", flush=True)
        faiss.omp_set_num_threads(1)
        for nprobe in [4, 16, 64, 256] if quick else NPROBES:
            ivf.nprobe = nprobe
            for k in ks:
                ids, *qps = timed(lambda q, k=k: ref.search(q, k)[1], xq)
                add("faiss-ivfpq", f"nprobe={nprobe}", f"k={k}", recall(ids, gt, k), qps)
            for pct, bm, fgt in bitmaps:
                sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bm))
                params = faiss.IndexRefineSearchParameters(
                    k_factor=4, base_index_params=faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
                )
                ids, *qps = timed(lambda q: ref.search(q, 10, params=params)[1], xq[: len(fgt)])
                add("faiss-ivfpq", f"nprobe={nprobe}", f"excl={pct}", recall(ids, fgt, 10), qps)

    with open(os.path.join(d, "peers.json"), "w") as f:
        json.dump(rows, f, indent=1)
    ours_path = os.path.join(d, "ours.json")
    ours = json.load(open(ours_path)) if os.path.exists(ours_path) else []
    summary(ours + rows, ks, [pct for pct, _, _ in filt])


def summary(rows, ks, pcts):
    """Best q/s per library and task at recall >= 0.95 / 0.90, and ours vs best peer,
    by the wall clock and by CPU time (on a shared machine the wall clock also counts
    the time other processes held the cores)."""
    tasks = [f"k={k}" for k in ks] + [f"excl={p}" for p in pcts]
    libs = sorted({r["library"] for r in rows}, key=lambda x: (not x.startswith("shortlist"), x))
    for key, clock in (("qps", "wall clock"), ("cpu_qps", "CPU time")):
        for floor in (0.95, 0.90):
            print(f"\n## best queries/second ({clock}) at recall >= {floor} (setting, recall)\n")
            print("| task | " + " | ".join(libs) + " | ours / best peer |")
            print("|---|" + "---:|" * (len(libs) + 1))
            for task in tasks:
                best = {}
                for lib in libs:
                    ok = [r for r in rows if r["library"] == lib and r["task"] == task and r["recall"] >= floor]
                    if ok:
                        best[lib] = max(ok, key=lambda r: r.get(key, 0.0))
                cells = []
                for lib in libs:
                    r = best.get(lib)
                    cells.append(f"{r.get(key, 0.0):,.0f} ({r['setting']}, {r['recall']:.3f})" if r else "not reached")
                ours = max((best[l].get(key, 0.0) for l in best if l.startswith("shortlist-ivf")), default=None)
                peer = max((best[l].get(key, 0.0) for l in best if not l.startswith("shortlist")), default=None)
                ratio = f"{ours / peer:.2f}x" if ours and peer else ("only ours" if ours else "-")
                print(f"| {task} | " + " | ".join(cells) + f" | {ratio} |")


if __name__ == "__main__":
    main()
