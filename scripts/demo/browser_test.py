#!/usr/bin/env python3
"""Drives headless Chromium (through chromedriver's W3C WebDriver protocol; the
standard library only) against a running `shortlist serve`: loads /demo, turns
the browser mode on as a visitor would (a click, a second after the page has
loaded), searches and likes three titles, waits for the lists, asserts
that recommendations appear and that the in-browser (WebAssembly) list agrees
with the server's, saves a screenshot and writes the timings measured in the
browser to OUT/browser_test.json.

    browser_test.py --server http://127.0.0.1:8501 --driver http://127.0.0.1:9515 \
        --out target/demo-test [--query star --query toy --query fargo]

Without --query it searches the first word of three titles of the catalogue.
Run through scripts/demo/browser_test.sh, which starts the server and the driver.
"""

import argparse
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request


class WebDriver:
    """The few W3C WebDriver commands the test needs."""

    def __init__(self, url, chromium=None):
        self.url = url.rstrip("/")
        options = {"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                            "--disable-dev-shm-usage", "--window-size=1400,900"]}
        if chromium:
            options["binary"] = chromium
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome",
                                                 "goog:chromeOptions": options}}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return json.loads(resp.read())["value"]
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            raise RuntimeError(f"WebDriver {method} {path}: {e.code} {detail[:500]}") from None

    def cmd(self, method, path, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url):
        self.cmd("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        el = self.cmd("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(el.values()))

    def type(self, element, text):
        self.cmd("POST", f"/element/{element}/clear", {})
        self.cmd("POST", f"/element/{element}/value", {"text": text})

    def click(self, element):
        self.cmd("POST", f"/element/{element}/click", {})

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.cmd("GET", "/screenshot")))

    def quit(self):
        try:
            self._call("DELETE", f"/session/{self.session}")
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def wait_for(driver, script, what, timeout=60.0):
    """Polls a JavaScript expression until it is truthy; fails naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.js(f"return {script};")
        if value:
            return value
        time.sleep(0.05)
    state = driver.js("return JSON.stringify(window.demoState || null);")
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; page state: {state[:2000]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", required=True)
    ap.add_argument("--driver", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--query", action="append", default=[])
    ap.add_argument("--chromium", default=None)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    driver = WebDriver(args.driver, args.chromium)
    try:
        t_load = time.monotonic()
        driver.get(args.server.rstrip("/") + "/demo")
        wait_for(driver, "window.demoState && window.demoState.ready", "the page to start")
        state = driver.js("return window.demoState;")
        assert state["wasmAvailable"], (
            "the page reports no WebAssembly build: run scripts/wasm/build.sh first")
        # The page's timings start at this click: the WebAssembly module and the
        # bundle are fetched after it, not before.
        time.sleep(1.0)
        driver.click(driver.find("#wasm-toggle"))
        wait_for(driver, "window.demoState.recommender !== null", "the WebAssembly models to load")
        load_s = time.monotonic() - t_load
        items = driver.js("return window.demoState.items;")
        assert len(items) > 3, f"catalogue of {len(items)} items"
        queries = args.query or [t.split()[0] for _, t in items[:3] if t]
        liked = []
        for q in queries[:3]:
            box = driver.find("#search")
            driver.type(box, q)
            wait_for(driver, "document.querySelectorAll('#results li').length > 0",
                     f"search results for {q!r}")
            updates = driver.js("return window.demoState.updates;")
            liked.append(driver.js("return document.querySelector('#results li').textContent;"))
            driver.click(driver.find("#results li"))
            wait_for(driver, f"window.demoState.updates > {updates}", f"the lists after liking {q!r}")
        state = driver.js("return window.demoState;")
        assert not state["errors"], f"the page reported errors: {state['errors']}"
        assert len(state["liked"]) == 3, f"liked {state['liked']}"
        server, wasm = state["server"], state["wasm"]
        assert server and server["items"], f"no server recommendations: {server}"
        assert wasm and wasm["items"], f"no in-browser recommendations: {wasm}"
        assert server["user_path"] == "history", server["user_path"]
        rows = driver.js("return document.querySelectorAll('#server-list tr').length;")
        assert rows == len(server["items"]) + 1, f"{rows} table rows"
        # The first stage's panel: the candidates by retrieval score, best first, with
        # the final list's positions of those the ranking stage kept.
        cands = state["candidates"]
        assert cands and cands["items"], f"no candidates panel: {cands}"
        assert cands["order_by"] == "retrieval", cands["order_by"]
        scores = [c["retrieval_score"] for c in cands["items"]]
        assert scores == sorted(scores, reverse=True), f"candidates not by retrieval score: {scores}"
        rows = driver.js("return document.querySelectorAll('#candidates-list tr').length;")
        assert rows == len(cands["items"]) + 1, f"{rows} candidate rows"
        final = {i["item_id"]: n + 1 for n, i in enumerate(server["items"])}
        marks = driver.js("return [...document.querySelectorAll('#candidates-list tr')]"
                          ".slice(1).map(r => r.cells[3].textContent);")
        want = [f"#{final[c['item_id']]}" if c["item_id"] in final else "–" for c in cands["items"]]
        assert marks == want, f"candidate marks {marks}, expected {want}"
        agree = state["agree"]
        assert agree and agree["same"], (
            f"in-browser and server lists differ: {agree}\nserver: {[i['item_id'] for i in server['items']]}\n"
            f"wasm: {[i['item_id'] for i in wasm['items']]}")
        for s, w in zip(server["items"], wasm["items"]):
            assert s["item_id"] == w["item_id"] and s["title"] == w["title"], (s, w)
        shot = os.path.join(args.out, "demo.png")
        driver.screenshot(shot)
        t = state["timings"]
        # Steady state: 300 more queries, after the page's own (its figure is the
        # first queries', run by freshly compiled, baseline-tier code).
        t["wasm_steady_mean_ms"] = driver.js("return window.demoMeasureSteady(300);")
        t["wasm_steady_runs"] = 300
        report = {
            "liked": liked,
            "items": len(server["items"]),
            "server_list": [i["item_id"] for i in server["items"]],
            "candidates_shown": [i["item_id"] for i in cands["items"]],
            "agree": agree,
            "page_and_models_load_s": round(load_s, 3),
            "timings_ms": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in t.items()},
            "screenshot": shot,
        }
        with open(os.path.join(args.out, "browser_test.json"), "w") as f:
            json.dump(report, f, indent=2)
        print(f"liked: {liked}")
        print(f"server and browser agree on {agree['items']} items "
              f"(largest score difference {agree['maxDiff']:.2e})")
        print(f"in the browser: models loaded in {t['wasm_load_ms']:.0f} ms (module fetched and compiled "
              f"{t['module_ms']:.0f}, bundle fetched {t['bundle_ms']:.0f}, both concurrently; then model "
              f"load {t['model_load_ms']:.0f}); first recommendation {t['first_recommendation_ms']:.0f} ms "
              f"after turning it on; "
              f"per query {t['wasm_per_query_mean_ms']:.3f} ms (mean of {t['wasm_per_query_runs']}, "
              f"median {t['wasm_per_query_median_ms']:.1f}; then {t['wasm_steady_mean_ms']:.3f} ms, "
              f"mean of {t['wasm_steady_runs']} more); "
              f"bundle {t['bundle_bytes'] / 1e6:.2f} MB, module {(t.get('module_bytes') or 0) / 1e6:.2f} MB")
        print(f"screenshot: {shot}")
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print(f"browser test FAILED: {e}", file=sys.stderr)
        sys.exit(1)
