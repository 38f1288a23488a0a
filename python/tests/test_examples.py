"""The seed examples run end to end on generated data, and `shortlist serve` serves
what the seed-002 example saved, answering the lists the Python pipeline gives."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

import shortlist

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")


@pytest.fixture(scope="module")
def log_file(tmp_path_factory, dataset):
    path = tmp_path_factory.mktemp("ex") / "log.tsv"
    dataset.to_tsv(path)
    return path


def run_example(name, *args):
    r = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), *map(str, args)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_seed_000_ranking(log_file):
    out = run_example("seed_000_ranking.py", log_file)
    assert out.startswith("test RMSE ")
    assert float(out.split()[2]) < 1.2


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_seed_002_two_stage_then_serve(tmp_path, log_file, cli):
    out = run_example("seed_002_two_stage.py", log_file, tmp_path / "base")
    assert "retrieval: recall@10" in out and "ranking: test RMSE" in out
    want = shortlist.Pipeline.load(tmp_path / "base").recommend(["u3"], k=5, num_candidates=100)
    port = free_port()
    server = subprocess.Popen([cli, "-q", "serve", "--model-base-path", str(tmp_path / "base"),
                               "--host", "127.0.0.1", "--port", str(port), "--events-fsync", "never"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.time() < deadline, "the server did not become ready"
            assert server.poll() is None, server.stderr.read().decode()
            time.sleep(0.1)
        got = post(f"http://127.0.0.1:{port}/v1/recommend", {"user_id": "u3", "k": 5, "exclude_seen": True})
        assert [i["item_id"] for i in got["items"]] == want["item_id"].tolist()
        assert got["order_by"] == want["order_by"][0]
    finally:
        server.terminate()
        server.wait(timeout=10)
