"""Datasets: pandas round trips, splits equal to the CLI's, errors with its messages."""

import numpy as np
import pytest

import shortlist
from conftest import pd, run_cli


def test_from_pandas_round_trip(frames, dataset):
    df, _ = frames
    out = dataset.to_pandas()
    assert list(out.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert out["user_id"].tolist() == df["user"].tolist()
    assert out["item_id"].tolist() == df["item"].tolist()
    # One str object per distinct id, repeated down the column (not one per row).
    assert len({id(v) for v in out["user_id"].tolist()}) == df["user"].nunique()
    assert out["rating"].dtype == np.float32
    np.testing.assert_array_equal(out["rating"].to_numpy(), df["stars"].to_numpy(dtype=np.float32))
    np.testing.assert_array_equal(out["timestamp"].to_numpy(), df["ts"].to_numpy())
    assert len(dataset) == len(df)
    assert dataset.num_users == df["user"].nunique()
    assert dataset.num_items == df["item"].nunique()
    assert dataset.explicit


def test_implicit_feedback_and_integer_ids():
    df = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [10, 11, 10]})
    ds = shortlist.Dataset.from_pandas(df)
    assert not ds.explicit
    out = ds.to_pandas()
    assert out["user_id"].tolist() == ["1", "1", "2"]
    assert out["rating"].tolist() == [1.0, 1.0, 1.0]
    assert "timestamp" not in out.columns


def test_datetime_timestamps_become_unix_seconds():
    df = pd.DataFrame(
        {"u": ["a", "b"], "i": ["x", "y"], "when": pd.to_datetime(["2020-01-01", "2020-01-02"])}
    )
    ds = shortlist.Dataset.from_pandas(df, user="u", item="i", timestamp="when")
    assert ds.to_pandas()["timestamp"].tolist() == [1577836800, 1577923200]


def test_item_features_round_trip(frames):
    df, items = frames
    ds = shortlist.Dataset.from_pandas(
        df, user="user", item="item", rating="stars", item_features=items, item_title="title"
    )
    f = ds.features("item")
    row = f.loc["i3"]
    want = items.set_index("item").loc["i3"]
    assert row["genre"] == want["genre"] and row["year"] == want["year"] and row["title"] == want["title"]


def test_split_is_the_cli_split(tmp_path, dataset, cli):
    whole = tmp_path / "all.tsv"
    dataset.to_tsv(whole)
    run_cli(cli, "data", "split", str(whole), "--ratio", "0.8", "--seed", "7", "--out", str(tmp_path / "s"))
    train, test = dataset.split(method="random", ratio=0.8, seed=7)
    train.to_tsv(tmp_path / "train.tsv")
    test.to_tsv(tmp_path / "test.tsv")
    for name in ("train.tsv", "test.tsv"):
        assert (tmp_path / name).read_bytes() == (tmp_path / "s" / name).read_bytes(), name
    assert len(train) + len(test) == len(dataset)


def test_split_files_and_schema(tmp_path, dataset):
    train, test = dataset.split(seed=1)
    train.to_tsv(tmp_path / "train.tsv")
    test.to_tsv(tmp_path / "test.tsv")
    a, b = shortlist.Dataset.from_split_files(tmp_path / "train.tsv", tmp_path / "test.tsv", progress=False)
    assert (len(a), len(b)) == (len(train), len(test))
    pd.testing.assert_frame_equal(a.to_pandas(), train.to_pandas().reset_index(drop=True))
    (tmp_path / "schema.toml").write_text(
        '[interactions]\npath = "train.tsv"\nuser = "user_id"\nitem = "item_id"\nrating = "rating"\ntimestamp = "timestamp"\n'
    )
    s = shortlist.Dataset.from_schema(tmp_path / "schema.toml", progress=False)
    assert len(s) == len(train)


def test_temporal_and_leave_last_out():
    df = pd.DataFrame({"user_id": ["a"] * 4 + ["b"] * 2, "item_id": list("wxyzwx"), "t": [4, 1, 3, 2, 6, 5]})
    ds = shortlist.Dataset.from_pandas(df, timestamp="t")
    tr, te = ds.split(method="leave-last-out", n=1)
    assert sorted(te.to_pandas()["item_id"]) == ["w", "w"]
    tr, te = ds.split(method="temporal", ratio=0.5)
    assert sorted(te.to_pandas()["timestamp"]) == [4, 5, 6]


def test_errors_carry_the_cli_messages(tmp_path, cli):
    with pytest.raises(FileNotFoundError) as e:
        shortlist.Dataset.open(tmp_path / "missing.tsv")
    cli_err = run_cli(cli, "data", "info", str(tmp_path / "missing.tsv"), check=False)
    assert cli_err.returncode == 2
    assert cli_err.stderr.strip() == f"error: {e.value}"
    with pytest.raises(ValueError, match="did you mean"):
        shortlist.Dataset.open("ml-100")
    with pytest.raises(ValueError, match="unknown MovieLens dataset 'ml-2k'"):
        shortlist.datasets.movielens("ml-2k")
    bad = tmp_path / "bad.tsv"
    bad.write_text("user_id\titem_id\trating\ttimestamp\n1\t2\tfive\t0\n")
    with pytest.raises(ValueError) as e:
        shortlist.Dataset.open(bad)
    cli_err = run_cli(cli, "data", "info", str(bad), check=False)
    assert cli_err.stderr.strip() == f"error: {e.value}"
    assert str(e.value).endswith("bad.tsv:2: column 3 (rating): expected a number, found \"five\"")


def test_bad_frames_are_value_errors():
    df = pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"], "r": [1.0, float("nan")]})
    with pytest.raises(ValueError, match=r"rating, row 1: expected a finite number, found NaN"):
        shortlist.Dataset.from_pandas(df, rating="r")
    with pytest.raises(ValueError, match="column 'stars' is not in the DataFrame; it has: user_id, item_id, r"):
        shortlist.Dataset.from_pandas(df, rating="stars")
    with pytest.raises(ValueError, match="column 'item_id', row 1: missing id"):
        shortlist.Dataset.from_pandas(pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", None]}))
    with pytest.raises(ValueError, match="no interactions"):
        shortlist.Dataset.from_pandas(df.iloc[:0])
    ds = shortlist.Dataset.from_pandas(df)
    with pytest.raises(ValueError, match="expected a number strictly between 0 and 1, found 1.5"):
        ds.split(ratio=1.5)
    with pytest.raises(ValueError, match="method=\"shuffle\": expected random, temporal or leave-last-out"):
        ds.split(method="shuffle")
