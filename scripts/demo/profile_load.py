#!/usr/bin/env python3
"""Where the browser's model loading goes: opens /demo in headless Chromium, starts
V8's sampling profiler (Chrome DevTools protocol, through chromedriver), turns the
browser mode on with a click as browser_test.py does, stops the profiler once the
models are loaded, and prints the time spent in each function while the
`Recommender` was being built (self time and inclusive time, WebAssembly functions
by their Rust names). The raw profile is written to OUT/profile.json (loadable in
Chrome's DevTools, Performance panel).

    SHORTLIST_DEMO_WASM_DIR=target/wasm-pkg shortlist serve --model-base-path BASE --port 8501 &
    chromedriver --port=9515 &
    python3 scripts/demo/profile_load.py --server http://127.0.0.1:8501 \\
        --driver http://127.0.0.1:9515 --out target/demo-profile

The profiler samples every 0.1 ms and slows the page down somewhat: compare profiles
with each other, not with browser_test.py's timings.
"""

import argparse
import collections
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_test import WebDriver, wait_for  # noqa: E402


def summarise(profile, inside, top):
    """(total ms, [(self ms, name)], [(inclusive ms, name)]) over the samples whose
    stack holds a function named with `inside`."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    parent = {c: n["id"] for n in profile["nodes"] for c in n.get("children", [])}
    own, incl = collections.Counter(), collections.Counter()
    total = 0
    for sample, delta in zip(profile["samples"], profile["timeDeltas"]):
        stack, i = [], sample
        while i in nodes:
            stack.append(nodes[i]["callFrame"]["functionName"] or "(anonymous)")
            i = parent.get(i)
        if not any(inside in f for f in stack):
            continue
        total += delta
        own[stack[0]] += delta
        for f in set(stack):
            incl[f] += delta
    ms = lambda c: [(v / 1000, k) for k, v in c.most_common(top)]
    return total / 1000, ms(own), ms(incl)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--driver", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--chromium", default=None)
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    driver = WebDriver(args.driver, args.chromium)
    try:
        def cdp(command, params=None):
            return driver.cmd("POST", "/goog/cdp/execute", {"cmd": command, "params": params or {}})

        driver.get(args.server.rstrip("/") + "/demo")
        wait_for(driver, "window.demoState && window.demoState.ready", "the page to start")
        if not driver.js("return window.demoState.wasmAvailable;"):
            raise AssertionError("the page reports no WebAssembly build: run scripts/wasm/build.sh first")
        time.sleep(1.0)
        cdp("Profiler.enable")
        cdp("Profiler.setSamplingInterval", {"interval": 100})
        cdp("Profiler.start")
        driver.click(driver.find("#wasm-toggle"))
        wait_for(driver, "window.demoState.recommender !== null", "the WebAssembly models to load")
        profile = cdp("Profiler.stop")["profile"]
        timings = driver.js("return window.demoState.timings;")
    finally:
        driver.quit()
    with open(os.path.join(args.out, "profile.json"), "w") as f:
        json.dump(profile, f)
    total, own, incl = summarise(profile, "Recommender", args.top)
    print("page timings (ms):", {k: round(v, 1) for k, v in timings.items() if isinstance(v, float)})
    print(f"building the Recommender: {total:.1f} ms sampled")
    print("self time (ms):")
    for v, k in own:
        print(f"  {v:7.1f}  {k[:120]}")
    print("inclusive time (ms):")
    for v, k in incl:
        print(f"  {v:7.1f}  {k[:120]}")
    print(f"profile: {os.path.join(args.out, 'profile.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
