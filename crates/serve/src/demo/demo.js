// The /demo page of `shortlist serve`: search titles, like a few, and compare the
// server's /v1/recommend list with the same models run in the browser
// (WebAssembly, crates/wasm). No dependencies, no build step.
//
// `window.demoState` exposes what the page shows (lists, agreement, timings) for
// the headless-browser test (scripts/demo/browser_test.py).

const K = 10;
const NUM_CANDIDATES = 100;
// The first stage's candidates shown beside the final list (of NUM_CANDIDATES).
const CANDIDATES_SHOWN = 20;
const USER_ID = "demo-browser-user";
// Scores from the server's SIMD kernels and the browser's differ in summation
// order: equal lists have the same items in the same order and scores within this
// relative tolerance.
const TOLERANCE = 1e-4;

const state = {
  items: [],          // [[item_id, title]]
  liked: [],          // item ids
  server: null,       // last /v1/recommend answer
  candidates: null,   // the same request ordered by retrieval score: the first stage
  wasm: null,         // last in-browser answer
  agree: null,        // null: not compared; else {same, detail}
  recommender: null,  // the wasm Recommender
  wasmAvailable: false,
  timings: {},        // ms: wasm load phases, first recommendation, per query
  errors: [],
  updates: 0,         // finished refreshes
};
window.demoState = state;

const $ = (id) => document.getElementById(id);
const titles = new Map();

function request() {
  return { user_id: USER_ID, history: state.liked.slice(), k: K,
           num_candidates: NUM_CANDIDATES, exclude_seen: true };
}

// The same request's candidates in the first stage's order (`order_by: "retrieval"`):
// what retrieval found before the ranking stage re-ordered it.
function candidatesRequest() {
  return { ...request(), k: CANDIDATES_SHOWN, order_by: "retrieval" };
}

function fmt(x, digits = 3) {
  return x === null || x === undefined ? "–" : Number(x).toFixed(digits);
}

function renderList(table, answer, differs) {
  table.replaceChildren();
  const head = table.insertRow();
  for (const [text, num] of [["#", true], ["title", false], ["retrieval", true],
                             ["ranking", true], ["rating", true]]) {
    const th = document.createElement("th");
    th.textContent = text;
    if (num) th.className = "num";
    head.appendChild(th);
  }
  if (!answer) return;
  answer.items.forEach((it, i) => {
    const row = table.insertRow();
    row.dataset.itemId = it.item_id;
    if (differs && differs.has(i)) row.className = "differs";
    const cells = [String(i + 1), it.title || titles.get(it.item_id) || it.item_id,
                   fmt(it.retrieval_score), fmt(it.ranking_score), fmt(it.predicted_rating, 2)];
    cells.forEach((text, c) => {
      const td = row.insertCell();
      td.textContent = text;
      if (c !== 1) td.className = "num";
    });
  });
}

function close(a, b) {
  if (a === null || b === null || a === undefined || b === undefined) return a === b;
  return Math.abs(a - b) <= TOLERANCE * Math.max(1, Math.abs(a), Math.abs(b));
}

// Same items in the same order, every score within the tolerance.
function compare(server, wasm) {
  const differs = new Set();
  let maxDiff = 0;
  const n = Math.max(server.items.length, wasm.items.length);
  for (let i = 0; i < n; i++) {
    const s = server.items[i], w = wasm.items[i];
    if (!s || !w || s.item_id !== w.item_id) { differs.add(i); continue; }
    for (const f of ["retrieval_score", "ranking_score", "predicted_rating"]) {
      if (!close(s[f], w[f])) differs.add(i);
      if (typeof s[f] === "number" && typeof w[f] === "number") {
        maxDiff = Math.max(maxDiff, Math.abs(s[f] - w[f]));
      }
    }
  }
  const same = differs.size === 0 && server.order_by === wasm.order_by
    && server.user_path === wasm.user_path;
  return { same, differs, maxDiff, n };
}

function showAgreement() {
  const el = $("agreement");
  if (!state.server || !state.wasm) { el.textContent = ""; state.agree = null; return; }
  const c = compare(state.server, state.wasm);
  state.agree = { same: c.same, items: c.n, differing: c.differs.size, maxDiff: c.maxDiff };
  el.className = c.same ? "ok" : "bad";
  el.textContent = c.same
    ? `Same list as the server: ${c.n} items in the same order (largest score difference ${c.maxDiff.toExponential(1)}).`
    : `Lists differ at ${c.differs.size} of ${c.n} positions (highlighted).`;
  renderList($("wasm-list"), state.wasm, c.differs);
}

async function post(body) {
  const resp = await fetch("/v1/recommend", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await resp.json();
  if (!resp.ok) throw new Error(`/v1/recommend: ${resp.status} ${answer.error || ""}`);
  return answer;
}

async function serverRecommend() {
  const t0 = performance.now();
  const body = await post(request());
  state.timings.server_ms = performance.now() - t0;
  return body;
}

// The candidates panel: rank by retrieval score, the final list's position of each
// candidate that made it (or "–"), its retrieval score.
function renderCandidates(answer, final) {
  const table = $("candidates-list");
  table.replaceChildren();
  const head = table.insertRow();
  for (const [text, num] of [["#", true], ["title", false], ["retrieval", true], ["in list", true]]) {
    const th = document.createElement("th");
    th.textContent = text;
    if (num) th.className = "num";
    head.appendChild(th);
  }
  if (!answer) return;
  const position = new Map((final ? final.items : []).map((it, i) => [it.item_id, i + 1]));
  answer.items.forEach((it, i) => {
    const row = table.insertRow();
    row.dataset.itemId = it.item_id;
    const at = position.get(it.item_id);
    if (at) row.className = "kept";
    const cells = [String(i + 1), it.title || titles.get(it.item_id) || it.item_id,
                   fmt(it.retrieval_score), at ? `#${at}` : "–"];
    cells.forEach((text, c) => {
      const td = row.insertCell();
      td.textContent = text;
      if (c !== 1) td.className = "num";
    });
  });
}

function wasmRecommend() {
  const t0 = performance.now();
  const answer = JSON.parse(state.recommender.recommend(JSON.stringify(request())));
  state.timings.wasm_query_ms = performance.now() - t0;
  return answer;
}

// Median time of `runs` in-browser recommendations for the current history.
function measurePerQuery(runs = 30) {
  const body = JSON.stringify(request());
  const times = [];
  const start = performance.now();
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    state.recommender.recommend(body);
    times.push(performance.now() - t0);
  }
  // Browsers coarsen performance.now() (to 0.1 ms or more): the mean over the whole
  // run is the finer figure.
  state.timings.wasm_per_query_mean_ms = (performance.now() - start) / runs;
  times.sort((a, b) => a - b);
  state.timings.wasm_per_query_median_ms = times[Math.floor(runs / 2)];
  state.timings.wasm_per_query_runs = runs;
}

// Steady state: the mean of `runs` more in-browser recommendations for the current
// history, once the engine's code has run many times (a browser first runs freshly
// compiled WebAssembly in a baseline tier, then optimises what stays hot). Called by
// the browser test, not by the page, whose own figure above is the first queries'.
window.demoMeasureSteady = (runs = 300) => {
  const body = JSON.stringify(request());
  const start = performance.now();
  for (let i = 0; i < runs; i++) state.recommender.recommend(body);
  state.timings.wasm_steady_mean_ms = (performance.now() - start) / runs;
  state.timings.wasm_steady_runs = runs;
  return state.timings.wasm_steady_mean_ms;
};

async function refresh() {
  if (state.liked.length === 0) {
    state.server = state.wasm = state.candidates = null;
    renderList($("server-list"), null);
    renderCandidates(null);
    renderList($("wasm-list"), null);
    $("server-info").textContent = "Like a title to see recommendations.";
    showAgreement();
    state.updates++;
    return;
  }
  try {
    const [answer, candidates] = await Promise.all([serverRecommend(), post(candidatesRequest())]);
    state.server = answer;
    state.candidates = candidates;
    renderList($("server-list"), state.server);
    renderCandidates(state.candidates, state.server);
    const kept = state.server.items.filter(
      (it) => state.candidates.items.some((c) => c.item_id === it.item_id)).length;
    $("candidates-info").textContent =
      `the first ${state.candidates.items.length} of ${NUM_CANDIDATES} candidates by retrieval score;` +
      ` ${kept} of the final ${state.server.items.length} are among them`;
    $("server-info").textContent =
      `${state.server.items.length} items, ordered by ${state.server.order_by}, user from ${state.server.user_path}` +
      ` (${state.timings.server_ms.toFixed(1)} ms round trip)`;
  } catch (e) {
    state.errors.push(String(e));
    $("server-info").textContent = String(e);
  }
  if (state.recommender) {
    try {
      state.wasm = wasmRecommend();
      if (state.timings.first_recommendation_ms === undefined) {
        // Loading (fetch, instantiate, models) plus the first, cold query: the time
        // from turning the browser mode on to its first list, without the wait for
        // the first like.
        state.timings.first_query_ms = state.timings.wasm_query_ms;
        state.timings.first_recommendation_ms = state.timings.wasm_load_ms + state.timings.wasm_query_ms;
      }
      measurePerQuery();
      renderList($("wasm-list"), state.wasm);
      $("wasm-info").textContent = wasmInfo();
    } catch (e) {
      state.errors.push(String(e));
      $("wasm-info").textContent = String(e);
    }
  }
  showAgreement();
  state.updates++;
}

function wasmInfo() {
  const t = state.timings;
  const module = t.module_bytes ? `, module ${(t.module_bytes / 1e6).toFixed(2)} MB` : "";
  const parts = [`loaded in ${fmt(t.wasm_load_ms, 0)} ms (bundle ${(t.bundle_bytes / 1e6).toFixed(2)} MB${module})`];
  if (t.first_recommendation_ms !== undefined) {
    parts.push(`first list ${fmt(t.first_recommendation_ms, 0)} ms after turning on (load + first query)`);
  }
  if (t.wasm_per_query_median_ms !== undefined) {
    parts.push(`${fmt(t.wasm_per_query_mean_ms, 3)} ms per query (mean of ${t.wasm_per_query_runs})`);
  }
  return parts.join("; ");
}

async function enableWasm() {
  $("wasm-info").textContent = "loading the WebAssembly build and the models…";
  const t0 = performance.now();
  // The bundle downloads while the module is fetched and compiled as it streams in.
  const bundleReady = fetch("/demo/bundle").then(async (resp) => {
    if (!resp.ok) throw new Error(`/demo/bundle: ${resp.status} ${await resp.text()}`);
    const bytes = await resp.arrayBuffer();
    return { bytes, ms: performance.now() - t0 };
  });
  // Caught when awaited below; this keeps an early failure from being reported as
  // unhandled while the module still loads.
  bundleReady.catch(() => {});
  const glue = await import("/demo/shortlist_wasm.js");
  const moduleResp = await fetch("/demo/shortlist_wasm_bg.wasm");
  if (!moduleResp.ok) throw new Error(`/demo/shortlist_wasm_bg.wasm: ${moduleResp.status}`);
  const moduleBytes = Number(moduleResp.headers.get("content-length")) || undefined;
  await glue.default({ module_or_path: moduleResp });
  const t1 = performance.now();
  const bundle = await bundleReady;
  const t2 = performance.now();
  state.recommender = new glue.Recommender(new Uint8Array(bundle.bytes));
  const t3 = performance.now();
  Object.assign(state.timings, {
    module_ms: t1 - t0, bundle_ms: bundle.ms, model_load_ms: t3 - t2, wasm_load_ms: t3 - t0,
    bundle_bytes: bundle.bytes.byteLength, module_bytes: moduleBytes,
  });
  $("wasm-info").textContent = wasmInfo();
}

async function onToggle() {
  const on = $("wasm-toggle").checked;
  if (!on) {
    state.wasm = null;
    renderList($("wasm-list"), null);
    showAgreement();
    return;
  }
  if (!state.recommender) {
    try {
      await enableWasm();
    } catch (e) {
      state.errors.push(String(e));
      $("wasm-info").textContent = `Could not start the WebAssembly build: ${e}`;
      $("wasm-toggle").checked = false;
      return;
    }
  }
  await refresh();
}

function renderLiked() {
  const ul = $("liked");
  ul.replaceChildren();
  for (const id of state.liked) {
    const li = document.createElement("li");
    li.textContent = titles.get(id) || id;
    li.dataset.itemId = id;
    li.title = "remove";
    li.addEventListener("click", () => {
      state.liked = state.liked.filter((x) => x !== id);
      renderLiked();
      refresh();
    });
    ul.appendChild(li);
  }
}

function like(id) {
  if (state.liked.includes(id)) return;
  state.liked.push(id);
  renderLiked();
  refresh();
}

function search() {
  const q = $("search").value.trim().toLowerCase();
  const ul = $("results");
  ul.replaceChildren();
  if (!q) return;
  let shown = 0;
  for (const [id, title] of state.items) {
    if (!(title || id).toLowerCase().includes(q)) continue;
    const li = document.createElement("li");
    li.textContent = title || id;
    li.dataset.itemId = id;
    li.addEventListener("click", () => like(id));
    ul.appendChild(li);
    if (++shown === 20) break;
  }
}

async function start() {
  $("search").addEventListener("input", search);
  $("clear").addEventListener("click", () => { state.liked = []; renderLiked(); refresh(); });
  $("wasm-toggle").addEventListener("change", onToggle);
  try {
    const resp = await fetch("/demo/items");
    const body = await resp.json();
    if (!resp.ok) throw new Error(body.error || resp.status);
    state.items = body;
    for (const [id, title] of body) titles.set(id, title);
    $("catalogue").textContent = `${body.length} items in the catalogue.`;
  } catch (e) {
    state.errors.push(String(e));
    $("catalogue").textContent = `Could not load the catalogue: ${e}`;
  }
  try {
    const status = await (await fetch("/demo/status")).json();
    state.wasmAvailable = status.wasm;
    if (status.wasm) {
      $("wasm-toggle").disabled = false;
      $("wasm-info").textContent = "Available: turn it on to run the models in this browser.";
    } else {
      $("wasm-info").textContent =
        `The WebAssembly build is not there (${status.wasm_dir}): run ${status.build} in the ` +
        "repository and reload. The server mode works without it.";
    }
  } catch (e) {
    state.errors.push(String(e));
  }
  renderList($("server-list"), null);
  renderList($("wasm-list"), null);
  state.ready = true;
  if (new URLSearchParams(location.search).has("wasm") && state.wasmAvailable) {
    $("wasm-toggle").checked = true;
    await onToggle();
  }
}

start();
