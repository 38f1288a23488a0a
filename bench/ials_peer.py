"""Times implicit's ALS on the pairs `bench_ials` wrote, with shortlist's default iALS
settings (64 factors, regularization 30, confidence 4, conjugate gradient with 3 steps).

usage: python bench/ials_peer.py [DIR] [ITERATIONS]   (DIR: target/bench-ials)
needs: numpy, scipy, implicit (e.g. the venv of bench/tf_reference or any venv).
"""
import os
import sys
import time

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

import implicit


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "target/bench-ials"
    iters = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    users, items = map(int, open(os.path.join(d, "shape.txt")).read().split())
    pairs = np.fromfile(os.path.join(d, "pairs.u32"), dtype="<u4").reshape(-1, 2)
    x = sp.csr_matrix(
        (np.ones(len(pairs), dtype=np.float32), (pairs[:, 0], pairs[:, 1])),
        shape=(users, items),
    )
    times = []
    # implicit reports each iteration's time through its callback (both half-steps).
    with threadpool_limits(1, "blas"):
        model = implicit.cpu.als.AlternatingLeastSquares(
            # implicit's confidence is alpha · r, ours 1 + alpha · r: alpha 4 here is ours 3.
            factors=64, regularization=30.0, alpha=4.0, iterations=iters,
            use_cg=True, num_threads=0, random_state=42,
        )
        model.cg_steps = 3  # implicit's default, set explicitly
        t0 = time.perf_counter()
        model.fit(x, show_progress=False, callback=lambda it, elapsed, loss: times.append(elapsed))
        total = time.perf_counter() - t0
    times.sort()
    print(f"implicit {implicit.__version__} ALS (64 factors, CG 3 steps, {os.cpu_count()} threads) "
          f"on {len(pairs):,} pairs, {users:,} users x {items:,} items: "
          f"median iteration {times[len(times) // 2]:.2f} s ({', '.join(f'{t:.2f}' for t in times)}; "
          f"fit call {total:.1f} s)")


if __name__ == "__main__":
    main()
