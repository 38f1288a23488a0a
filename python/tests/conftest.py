"""Small generated data (no network): users and items with planted tastes."""

import os
import shutil
import subprocess

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

# Run by `cargo test` (python/tests/pytest.rs): the package must be the one staged
# from this build, not an installed copy.
if os.environ.get("SHORTLIST_EXPECT_PACKAGE"):
    import shortlist

    _got = os.path.dirname(os.path.abspath(shortlist.__file__))
    assert _got == os.path.abspath(os.environ["SHORTLIST_EXPECT_PACKAGE"]), _got


def synth(users: int = 120, items: int = 80, per_user: int = 25, seed: int = 7):
    """A rating log with low-rank structure: user u rates item i about
    3 + 1.5·⟨p_u, q_i⟩ (clipped to 1–5), each user the items closest to their taste
    more often; string ids, integer timestamps, item genres and a numeric year."""
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(users, 3))
    q = rng.normal(size=(items, 3))
    rows = []
    t = 1_600_000_000
    for u in range(users):
        affinity = q @ p[u]
        prob = np.exp(affinity) / np.exp(affinity).sum()
        chosen = rng.choice(items, size=per_user, replace=False, p=prob)
        for i in chosen:
            r = float(np.clip(np.round(3 + 1.5 * affinity[i] / 2 + rng.normal(scale=0.5)), 1, 5))
            t += int(rng.integers(1, 100))
            rows.append((f"u{u}", f"i{i}", r, t))
    df = pd.DataFrame(rows, columns=["user", "item", "stars", "ts"])
    genres = ["drama", "comedy", "action", "horror"]
    item_df = pd.DataFrame(
        {
            "item": [f"i{i}" for i in range(items)],
            "title": [f"Film {i}" for i in range(items)],
            "genre": [genres[int(np.argmax(q[i, :3])) % 4] for i in range(items)],
            "year": [1950.0 + (i * 7) % 70 for i in range(items)],
        }
    )
    return df, item_df


@pytest.fixture(scope="session")
def frames():
    return synth()


@pytest.fixture(scope="session")
def dataset(frames):
    import shortlist

    df, _ = frames
    return shortlist.Dataset.from_pandas(df, user="user", item="item", rating="stars", timestamp="ts")


@pytest.fixture(scope="session")
def cli():
    """The `shortlist` binary: $SHORTLIST_BIN, else target/release/shortlist of this
    checkout (built by `cargo test --release --workspace`), else one on PATH."""
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [
        os.environ.get("SHORTLIST_BIN"),
        os.path.join(here, "..", "..", "target", "release", "shortlist"),
        shutil.which("shortlist"),
    ]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    pytest.skip("no shortlist binary: build it with `cargo build --release` or set SHORTLIST_BIN")


def run_cli(cli, *args, check=True):
    return subprocess.run([cli, "-q", *args], capture_output=True, text=True, check=check)
