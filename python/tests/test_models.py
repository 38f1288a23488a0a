"""Models: the same metrics and artifacts as the CLI, save/load both ways, errors."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import shortlist
from conftest import pd, run_cli

TIMING = {"fit_seconds", "train_seconds", "train_seconds_per_epoch", "examples_per_second", "eval_seconds_per_epoch", "out"}

# (estimator, CLI subcommand, constructor arguments = CLI flags)
KINDS = [
    (shortlist.Retrieval, "retrieval", {"epochs": 2, "seed": 3}),
    (shortlist.Ranking, "ranking", {"epochs": 1, "seed": 3}),
    (shortlist.EASE, "ease", {}),
    (shortlist.IALS, "ials", {"epochs": 2}),
]


def flags(kw):
    out = []
    for k, v in kw.items():
        out += ["--" + k.replace("_", "-"), str(v)]
    return out


def strip(report):
    return {k: v for k, v in report.items() if k not in TIMING}


@pytest.fixture(scope="module")
def split_file(tmp_path_factory, dataset):
    d = tmp_path_factory.mktemp("data")
    dataset.to_tsv(d / "all.tsv")
    return d / "all.tsv"


@pytest.fixture(scope="module")
def parts(dataset):
    return dataset.split(ratio=0.8, seed=42)


@pytest.mark.parametrize("cls,kind,kw", KINDS, ids=[k[1] for k in KINDS])
def test_fit_reports_the_cli_metrics_bit_for_bit(tmp_path, cli, split_file, parts, cls, kind, kw):
    train, test = parts
    model = cls(**kw).fit(train, test, progress=False)
    out = tmp_path / "cli"
    r = run_cli(cli, "train", kind, "--data", str(split_file), "--split-seed", "42", *flags(kw), "--out", str(out), "--json")
    assert strip(model.report_) == strip(json.loads(r.stdout))
    # evaluate(test) is `shortlist eval --model DIR --test test.tsv --json` on the CLI's model.
    test.to_tsv(tmp_path / "test.tsv")
    e = run_cli(cli, "eval", "--model", str(out), "--test", str(tmp_path / "test.tsv"), "--json")
    assert model.evaluate(test) == json.loads(e.stdout)
    # The saved files are the CLI's, byte for byte (the manifest lists their SHA-256s),
    # but for curves.csv, which holds each epoch's seconds, and the index, whose
    # safetensors metadata is written in hash-map order (it differs between two CLI
    # runs too): its header and tensors are compared instead.
    model.save(tmp_path / "py")

    def manifest(d):
        files = json.loads((d / "manifest.json").read_text())["files"]
        files.pop("curves.csv", None)
        files.pop("index.safetensors", None)
        return files

    assert manifest(tmp_path / "py") == manifest(out)
    assert len(manifest(out)) >= 4
    if (out / "index.safetensors").exists():
        assert safetensors(tmp_path / "py" / "index.safetensors") == safetensors(out / "index.safetensors")


def safetensors(path):
    """(header, data) of a safetensors file, the header as a dict."""
    b = path.read_bytes()
    n = int.from_bytes(b[:8], "little")
    return json.loads(b[8 : 8 + n]), b[8 + n :]


def test_recommend_save_load_and_the_cli_agree(tmp_path, cli, parts):
    train, test = parts
    model = shortlist.Retrieval(epochs=2).fit(train, test, progress=False)
    recs = model.recommend(["u1", "u2", "stranger"], k=5)
    assert list(recs.columns) == ["user_id", "item_id", "score", "title", "rank"]
    assert recs["rank"].tolist() == [1, 2, 3, 4, 5] * 3
    seen = set(train.to_pandas().query("user_id == 'u1'")["item_id"])
    assert not seen & set(recs.query("user_id == 'u1'")["item_id"])
    model.save(tmp_path / "m")
    r = json.loads(run_cli(cli, "recommend", "--model", str(tmp_path / "m"), "--user", "u1", "-k", "5", "--exclude-seen", "--json").stdout)
    assert [i["item_id"] for i in r["items"]] == recs.query("user_id == 'u1'")["item_id"].tolist()
    np.testing.assert_allclose([i["score"] for i in r["items"]], recs.query("user_id == 'u1'")["score"], rtol=1e-6)
    loaded = shortlist.load(tmp_path / "m")
    assert isinstance(loaded, shortlist.Retrieval)
    pd.testing.assert_frame_equal(loaded.recommend(["u1", "u2", "stranger"], k=5), recs)
    assert loaded.evaluate(test) == model.evaluate(test)
    users, U, items, V = model.embeddings()
    assert U.shape == (len(users), V.shape[1]) and V.shape[0] == len(items)
    u, i = users.index("u1"), items.index(recs["item_id"][0])
    assert U[u] @ V[i] == pytest.approx(recs["score"][0], rel=1e-4)


def test_cli_trained_models_load_and_predict(tmp_path, cli, split_file):
    out = tmp_path / "ranking"
    run_cli(cli, "train", "ranking", "--data", str(split_file), "--epochs", "1", "--out", str(out))
    ranking = shortlist.load(out)
    assert isinstance(ranking, shortlist.Ranking)
    p = ranking.predict(["u1", "u1", "u2"], ["i1", "i2", "i3"])
    assert p.dtype == np.float32 and p.shape == (3,)
    r = json.loads(run_cli(cli, "predict", "--model", str(out), "--user", "u1", "--item", "i1", "--item", "i2", "--json").stdout)
    got = {x["item_id"]: x["rating"] for x in r["predictions"]}
    assert got["i1"] == pytest.approx(float(p[0]), rel=1e-6) and got["i2"] == pytest.approx(float(p[1]), rel=1e-6)


def test_pipeline_saves_what_the_cli_serves(tmp_path, cli, parts):
    train, test = parts
    retrieval = shortlist.Retrieval(epochs=2).fit(train, test, progress=False)
    ranking = shortlist.Ranking(epochs=1).fit(train, test, progress=False)
    pipe = shortlist.Pipeline(retrieval, ranking)
    lists = pipe.recommend(["u1", "u7"], k=5, num_candidates=20)
    paths = pipe.save(tmp_path / "base")
    assert paths == {"retrieval": str(tmp_path / "base" / "retrieval" / "1"), "ranking": str(tmp_path / "base" / "ranking" / "1")}
    assert pipe.save(tmp_path / "base")["ranking"].endswith(os.path.join("ranking", "2"))
    r = json.loads(run_cli(cli, "recommend", "--pipeline", str(tmp_path / "base"), "--user", "u7", "-k", "5",
                           "--num-candidates", "20", "--exclude-seen", "--json").stdout)
    assert [i["item_id"] for i in r["items"]] == lists.query("user_id == 'u7'")["item_id"].tolist()
    assert r["order_by"] == lists["order_by"][0]
    again = shortlist.Pipeline.load(tmp_path / "base").recommend(["u1", "u7"], k=5, num_candidates=20)
    pd.testing.assert_frame_equal(again, lists)


def test_configs_as_dicts_and_files(tmp_path, parts):
    train, test = parts
    cfg = shortlist.Retrieval().get_config()
    assert isinstance(cfg, dict) and "epochs" in cfg
    m = shortlist.Retrieval(config=cfg, epochs=1).fit(train, progress=False)
    assert m.report_["epochs"] == 1
    assert m.get_config()["epochs"] == 1
    (tmp_path / "r.toml").write_text(shortlist._shortlist.config_to_toml(json.dumps(cfg)))
    a = shortlist.Retrieval(config=tmp_path / "r.toml", epochs=2, seed=5).fit(train, test, progress=False)
    b = shortlist.Retrieval(epochs=2, seed=5).fit(train, test, progress=False)
    assert strip(a.report_) == strip(b.report_)


def test_errors(tmp_path, cli, parts, dataset):
    train, test = parts
    with pytest.raises(ValueError, match="unknown field `nonsense`"):
        shortlist.Retrieval(nonsense=1).fit(train, progress=False)
    with pytest.raises(FileNotFoundError, match="no such file"):
        shortlist.Retrieval(config=tmp_path / "none.toml").fit(train, progress=False)
    with pytest.raises(ValueError, match="epochs: expected a whole number ≥ 1, found 0"):
        shortlist.Retrieval(epochs=0).fit(train, progress=False)
    other = shortlist.Dataset.from_pandas(pd.DataFrame({"user_id": ["a"], "item_id": ["b"]}))
    with pytest.raises(ValueError, match="valid must be another part of train's dataset"):
        shortlist.Retrieval(epochs=1).fit(train, other, progress=False)
    with pytest.raises(ValueError, match="is not fitted"):
        shortlist.EASE().recommend(["u1"])
    with pytest.raises(FileNotFoundError) as e:
        shortlist.load(tmp_path / "nothing")
    r = run_cli(cli, "eval", "--model", str(tmp_path / "nothing"), "--test", "x", check=False)
    assert r.stderr.strip() == f"error: {e.value}"
    ranking = shortlist.Ranking(epochs=1).fit(train, progress=False)
    with pytest.raises(ValueError, match="2 user ids but 1 item ids"):
        ranking.predict(["u1", "u2"], ["i1"])
    with pytest.raises(ValueError, match="k: expected at least 1"):
        shortlist.EASE().fit(train).recommend(["u1"], k=0)


def test_fit_releases_the_gil(dataset):
    big = shortlist.Dataset.from_pandas(pd.concat([dataset.to_pandas()] * 1), rating="rating")
    train, test = big.split(seed=1)
    count = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            count[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.05)
        start_count, t0 = count[0], time.perf_counter()
        # 40 epochs took 0.19 s on a fast machine, too short to tell: 120.
        shortlist.Retrieval(epochs=120).fit(train, test, progress=False)
        elapsed, during = time.perf_counter() - t0, count[0] - start_count
    finally:
        stop.set()
        t.join()
    assert elapsed > 0.2, "the fit is too short to tell"
    # A held GIL would let the thread run only at the 100 ms signal checks.
    assert during > 20_000 * elapsed, (during, elapsed)


def _worker_cpus():
    # CPUs allowed to each of this process's threads named sl-pool-N (the pool's).
    out = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/comm") as f:
            name = f.read().strip()
        if name.startswith("sl-pool-"):
            with open(f"/proc/self/task/{tid}/status") as f:
                line = next(x for x in f if x.startswith("Cpus_allowed_list:"))
            out[name] = line.split(":")[1].strip()
    return out


def _cpu_quota():
    # Whether this cgroup (v2) caps the CPUs below the affinity set's count.
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()
    except (OSError, ValueError):
        return False
    return quota != "max" and float(quota) / float(period) < len(os.sched_getaffinity(0))


@pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
                    reason="pinning applies on Linux with at least 2 CPUs")
def test_pool_workers_are_pinned_to_distinct_cpus(dataset, tmp_path):
    # The test process itself: its pool was built at import (SHORTLIST_PIN_THREADS unset
    # by the harness).
    shortlist.EASE().fit(dataset).recommend(["u1"], k=2)
    cpus = _worker_cpus()
    allowed = sorted(os.sched_getaffinity(0))
    if os.environ.get("SHORTLIST_PIN_THREADS") == "0" or os.environ.get("RAYON_NUM_THREADS") or _cpu_quota():
        pytest.skip("pinning does not apply to this process (turned off, RAYON_NUM_THREADS, a CPU quota)")
    assert sorted(cpus) == sorted(f"sl-pool-{i}" for i in range(len(allowed)))
    assert sorted(int(c) for c in cpus.values()) == allowed
    # Turned off: no pool of ours, the workers are rayon's own (unpinned, unnamed).
    code = ("import os, shortlist, pandas as pd, sys; sys.path.insert(0, os.environ['TESTS']); "
            "import test_models as t; d = shortlist.Dataset.from_pandas(pd.DataFrame("
            "{'user': ['a', 'b'] * 5, 'item': list('vwxyz') * 2}), user='user', item='item'); shortlist.EASE().fit(d); "
            "print(t._worker_cpus())")
    env = dict(os.environ, SHORTLIST_PIN_THREADS="0", TESTS=os.path.dirname(__file__))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "{}", out.stderr


def test_ctrl_c_interrupts_fit(dataset):
    # Python's own Ctrl-C handler, whatever this process inherited (a background job of
    # a non-interactive shell starts with SIGINT ignored, and Python keeps it so).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        train, test = dataset.split(seed=1)
        timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
        t0 = time.perf_counter()
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            shortlist.Retrieval(epochs=100_000).fit(train, test, progress=False)
        assert time.perf_counter() - t0 < 2.0
    finally:
        signal.signal(signal.SIGINT, previous)
    # The training stops too, instead of running its 100,000 epochs on unseen: once it
    # has reached its next check, the process uses no CPU while this thread sleeps
    # (a training left running keeps a core busy: ≈ 0.5 s of CPU in 0.5 s).
    time.sleep(0.3)
    cpu = time.process_time()
    time.sleep(0.5)
    assert time.process_time() - cpu < 0.1, "the interrupted fit is still running"


@pytest.fixture(scope="module")
def cli_lists(tmp_path_factory, cli, parts):
    """Each candidate model kind fitted from Python, saved, and the CLI's per-user
    lists of every user (`recommend --all-users`, one request per user)."""
    train, test = parts
    d = tmp_path_factory.mktemp("lists")
    out = {}
    for cls, kw in ((shortlist.Retrieval, {"epochs": 2}), (shortlist.EASE, {}), (shortlist.IALS, {"epochs": 2})):
        model = cls(**kw).fit(train, progress=False)
        model.save(d / model._kind)
        for exclude in (True, False):
            args = ["recommend", "--model", str(d / model._kind), "--all-users", "-k", "7", "--jsonl"]
            lines = run_cli(cli, *args, *(["--exclude-seen"] if exclude else [])).stdout.splitlines()
            out[model._kind, exclude] = (model, [json.loads(line) for line in lines])
    return out


@pytest.mark.parametrize("kind", ["retrieval", "ease", "ials"])
@pytest.mark.parametrize("exclude", [True, False])
def test_batched_recommend_equals_the_cli_per_user_lists(cli_lists, kind, exclude):
    model, lines = cli_lists[kind, exclude]
    users = [line["user_id"] for line in lines]
    # Every user at once (one batched search), plus an unknown and a repeated user.
    got = model.recommend(users + ["stranger", users[0]], k=7, exclude_seen=exclude, as_frame=False)
    assert set(got) == {"user_id", "item_id", "score", "title", "rank"}
    assert got["score"].dtype == np.float32 and got["rank"].dtype == np.int64
    at = 0
    for line in lines:
        n = len(line["items"])
        assert got["user_id"][at:at + n].tolist() == [line["user_id"]] * n
        assert got["item_id"][at:at + n].tolist() == line["items"]
        # The CLI prints each f32 score exactly (shortest round-trip form): same bits.
        assert got["score"][at:at + n].tolist() == np.asarray(line["scores"], dtype=np.float32).tolist()
        assert got["rank"][at:at + n].tolist() == list(range(1, n + 1))
        at += n
    popular = model.recommend(["stranger"], k=7, exclude_seen=exclude, as_frame=False)
    assert got["item_id"][at:at + 7].tolist() == popular["item_id"].tolist()
    assert got["item_id"][at + 7:].tolist() == lines[0]["items"]
    frame = model.recommend(users[:3], k=7, exclude_seen=exclude)
    arrays = model.recommend(users[:3], k=7, exclude_seen=exclude, as_frame=False)
    assert list(frame.columns) == list(arrays)
    for col in ("user_id", "item_id", "title"):
        assert frame[col].dtype == "category", col
    for col, values in arrays.items():
        assert frame[col].tolist() == values.tolist(), col


def test_ids_as_lists_series_and_integer_arrays(frames):
    # Integer ids (u12 → 12): a numpy int64 array, a list of ints, a list of fresh
    # strs and a Series all name the same users and items.
    df, _ = frames
    df = df.assign(user=df["user"].str[1:].astype(int), item=df["item"].str[1:].astype(int))
    data = shortlist.Dataset.from_pandas(df, user="user", item="item", rating="stars", timestamp="ts")
    train, test = data.split(ratio=0.8, seed=42)
    rng = np.random.default_rng(1)
    u = rng.integers(0, 125, 5000)  # a few unknown users (≥ 120) and items (≥ 80)
    i = rng.integers(0, 85, 5000)
    for model in (shortlist.EASE().fit(train), shortlist.Ranking(epochs=1).fit(train, progress=False)):
        want = model.predict([str(x) for x in u], [str(x) for x in i])
        assert want.dtype == np.float32 and want.shape == (5000,)
        np.testing.assert_array_equal(model.predict(u, i), want)
        np.testing.assert_array_equal(model.predict(u.tolist(), i.astype(np.int32)), want)
        np.testing.assert_array_equal(model.predict(pd.Series(u), pd.Series(i.astype(str))), want)
        # One pair at a time gives the batch's scores. Not always to the bit: the ranking
        # model scores a batch through the GEMM kernel and a single pair through its dot
        # path, the same sums in another order (1 ulp of float32 seen).
        for p in range(0, 5000, 997):
            one = model.predict([str(u[p])], [str(i[p])])[0]
            assert np.isnan(want[p]) or abs(one - want[p]) <= 1e-6 * max(1.0, abs(want[p]))
    ease = shortlist.EASE().fit(train)
    # Values that are equal as dict keys but not as ids: 1 == 1.0 == True, yet only "1"
    # is the id of 1 ("1.0" and "True" are unknown users); a str subclass counts by its
    # text, a numpy integer by its value.
    class Name(str):
        pass

    mixed = ease.predict(["1", 1, 1.0, True, Name("1"), np.int64(1), "1"], ["2"] * 7)
    assert not np.isnan(mixed[0]) and np.isnan(mixed[2]) and np.isnan(mixed[3])
    assert mixed[1] == mixed[4] == mixed[5] == mixed[6] == mixed[0]
    lists = ease.recommend(np.array([3, 3, 500]), k=4, as_frame=False)
    assert lists["user_id"].tolist() == ["3"] * 8 + ["500"] * 4
    with pytest.raises(ValueError, match="user_ids: expected a list of ids or a numpy integer array"):
        ease.predict({"a": 1}, ["1"])
    # Ids are read from the str objects' own UTF-8 (no copy): non-ASCII text, a
    # subclass and fresh objects of one text name one user; a lone surrogate has no
    # UTF-8 form and is refused with Python's own error.
    accents = pd.DataFrame({"user": ["zoë", "zoë", "Łukasz", "李", "🙂"] * 20,
                            "item": [f"i{j % 7}" for j in range(100)], "stars": 4.0, "ts": 0})
    small = shortlist.EASE().fit(shortlist.Dataset.from_pandas(accents, user="user", item="item",
                                                            rating="stars", timestamp="ts"))
    asked = ["zoë", "".join(["zo", "ë"]), Name("李"), "🙂", "Łukasz", "nobody"]
    got = small.recommend(asked, k=2, exclude_seen=False, as_frame=False)
    assert got["user_id"].tolist() == ["zoë"] * 4 + ["李"] * 2 + ["🙂"] * 2 + ["Łukasz"] * 2 + ["nobody"] * 2
    np.testing.assert_array_equal(got["score"][:2], got["score"][2:4])
    # The distinct ids come back as the objects given (the first of each text).
    raw_ids = small._fitted().recommend(asked, 2, True)[0]
    assert raw_ids[0] is asked[0] and raw_ids[-1] is asked[-1] and type(raw_ids[2]) is str
    with pytest.raises(UnicodeEncodeError):
        small.predict(["\ud800"], ["i1"])
    with pytest.raises(ValueError, match="k: expected at least 1"):
        ease.recommend(u, k=0)


def test_fit_reports_progress_to_a_callable(parts):
    train, test = parts
    calls = []
    shortlist._shortlist.Model.fit("retrieval", train._raw, test._raw, epochs=3,
                                   progress=lambda *a: calls.append(a))
    assert calls, "no progress reported"
    phase, label, total, done = calls[-1]
    assert phase >= 1 and label and done == total, calls[-1]
    assert all(c[3] <= c[2] for c in calls if c[2] is not None)
    # tqdm is optional: with it, fit(progress=True) draws bars; without, nothing.
    shortlist.Retrieval(epochs=1).fit(train, progress=True)


def test_embeddings_are_computed_once_and_read_only(parts):
    train, _ = parts
    model = shortlist.Retrieval(epochs=1).fit(train, progress=False)
    a, b = model.embeddings(), model.embeddings()
    assert a[1] is b[1] and a[3] is b[3]
    assert not a[1].flags.writeable and a[1].flags.c_contiguous and a[1].dtype == np.float32
    with pytest.raises(ValueError):
        a[1][0, 0] = 1.0
    assert model.user_embeddings is a[1] and model.item_ids == a[2]


def test_pipeline_recommend_takes_history_exclusions_and_rules(frames):
    df, items = frames
    ds = shortlist.Dataset.from_pandas(
        df, user="user", item="item", rating="stars", timestamp="ts", item_features=items, item_title="title"
    )
    train, _ = ds.split(method="random", ratio=0.8, seed=7)
    retrieval = shortlist.Retrieval(
        epochs=2, history=True, features={"item_features": ["genre", "year"]}
    ).fit(train, progress=False)
    pipe = shortlist.Pipeline(retrieval)
    genre = items.set_index("item")["genre"]

    # A filter keeps dramas only, k of them for every user.
    dramas = pipe.recommend(["u1", "u2"], k=5, filter={"genre": ["drama"]})
    assert len(dramas) == 10 and set(genre[dramas["item_id"]]) == {"drama"}
    # At most one per genre: one item of each genre, though k is 5 (the candidates are
    # fetched again until the caps are filled or the catalogue is exhausted).
    capped = pipe.recommend(["u1"], k=5, num_candidates=5, max_per={"genre": 1})
    assert sorted(genre[capped["item_id"]]) == sorted(set(genre))
    # Excluded items never come back; the rest keep their order.
    first = pipe.recommend(["u1"], k=5)["item_id"].tolist()
    again = pipe.recommend(["u1"], k=5, exclude_items=first[:2])["item_id"].tolist()
    assert again[:3] == first[2:] and not set(first[:2]) & set(again)
    # A new user: the most popular items without a history; with one, a list built
    # from it that leaves the history out.
    popular = pipe.recommend(["newcomer"], k=5)["item_id"].tolist()
    liked = [i for i in genre.index if genre[i] == "action"][:4]
    assert len(liked) == 4
    mine = pipe.recommend(["newcomer"], k=5, history={"newcomer": liked})["item_id"].tolist()
    assert mine != popular and not set(liked) & set(mine)
    # A known user's history extends the training items: they leave the list too.
    extended = pipe.recommend(["u1"], k=5, history={"u1": first[:1]})["item_id"].tolist()
    assert first[0] not in extended

    # Bad rules: the server's messages, as ValueError.
    with pytest.raises(ValueError, match=r"^filter\.colour: unknown attribute; the items have: title, genre, year$"):
        pipe.recommend(["u1"], filter={"colour": ["red"]})
    with pytest.raises(ValueError, match=r"^max_per\.genre must be a positive integer, got 0$"):
        pipe.recommend(["u1"], max_per={"genre": 0})
    with pytest.raises(ValueError, match="history: expected a dict"):
        pipe.recommend(["u1"], history=[["i1"]])
