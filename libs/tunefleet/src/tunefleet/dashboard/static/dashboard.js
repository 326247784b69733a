// tunefleet dashboard: fills each page in from /api/... and keeps it current from the server's
// event stream (/api/events says which studies changed; the page fetches what it shows of
// them again). Everything the browser holds is bounded: a page of trials, sampled series.
"use strict";

const body = document.body;
const PAGE = body.dataset.page;
const ID = body.dataset.id;
// What the page last drew, for tests and for measuring how fast results arrive.
window.tf = { updates: [], draws: 0, lastError: null };
// plotly.js (4.6 MB) loads beside this script, not before it: the page's data is fetched and its
// tables drawn while the browser still parses it, and only the charts wait for it.
const plotly = new Promise((resolve) => {
  const ready = () => { window.tf.plotlyAt = performance.now(); resolve(window.Plotly); };
  if (window.Plotly) ready();
  else document.getElementById("plotly").addEventListener("load", ready);
});

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}
const fmt = (v, d = 5) => (v === null || v === undefined ? "-" : Number(v).toFixed(d));
const when = (iso) => (iso ? iso.replace("T", " ").slice(0, 19) : "-");
const link = (href, text) => el("a", { href }, text);
const num = (v, d) => el("td", { class: "num" }, fmt(v, d));

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// A refresh that never runs twice at once: a change while one is in flight runs it once more.
function serial(fn) {
  let running = false, again = false;
  return async function run() {
    if (running) { again = true; return; }
    running = true;
    try { await fn(); window.tf.lastError = null; }
    catch (e) { window.tf.lastError = String(e); console.warn(e); }
    finally {
      running = false;
      if (again) { again = false; run(); }
    }
  };
}

function live(onChange) {
  const badge = document.getElementById("live");
  const source = new EventSource("/api/events");
  source.addEventListener("hello", () => { badge.textContent = "live"; badge.classList.add("on"); });
  source.addEventListener("change", (e) => onChange(JSON.parse(e.data)));
  source.onerror = () => { badge.textContent = "reconnecting"; badge.classList.remove("on"); };
  window.tf.source = source;
}

function token() {
  const input = document.getElementById("token");
  const value = input ? input.value || sessionStorage.getItem("tf-token") || "" : "";
  if (input && input.value) sessionStorage.setItem("tf-token", input.value);
  return value;
}

function bar(done, total, cls) {
  const pct = total ? Math.min(100, (100 * done) / total) : 0;
  return el("span", { class: cls }, el("span", { style: `width:${pct.toFixed(1)}%` }));
}

// -- studies ---------------------------------------------------------------------------------

function studiesPage() {
  const tbody = document.querySelector("#studies tbody");
  const refresh = serial(async () => {
    const data = await getJSON("/api/studies");
    const ticked = new Set([...tbody.querySelectorAll("input:checked")].map((i) => i.value));
    tbody.replaceChildren(...data.studies.map((s) => el("tr", { "data-study-id": s.study_id },
      el("td", {}, el("input", { type: "checkbox", value: s.study_id, checked: ticked.has(s.study_id) ? "" : null })),
      el("td", {}, link(`/studies/${s.study_id}`, s.name)),
      el("td", {}, el("span", { class: "state" }, s.state)),
      el("td", {}, bar(s.done + s.failed, s.n_trials, "mini"), ` ${s.done + s.failed}/${s.n_trials}`),
      el("td", { class: "num" }, s.done), el("td", { class: "num" }, s.failed),
      el("td", { class: "num" }, s.running), num(s.best_score, 5),
      el("td", {}, s.metric || "-"), el("td", {}, s.libraries.join(", ")),
      el("td", {}, when(s.submitted_at)),
      el("td", {}, s.cost === null ? "-" : s.cost))));
    document.getElementById("empty").hidden = data.studies.length > 0;
    window.tf.draws += 1;
  });
  const button = document.getElementById("compare");
  const picked = () => [...tbody.querySelectorAll("input:checked")].map((i) => i.value);
  tbody.addEventListener("change", () => { button.disabled = picked().length !== 2; });
  button.onclick = () => {
    const [a, b] = picked();
    location.href = `/compare?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`;
  };
  refresh();
  live(() => refresh());
}

// -- two studies -----------------------------------------------------------------------------

function comparePage() {
  const query = new URLSearchParams(location.search);
  const ids = [query.get("a"), query.get("b")];
  const refresh = serial(async () => {
    const data = await getJSON(`/api/compare?a=${encodeURIComponent(ids[0])}&b=${encodeURIComponent(ids[1])}`);
    const [a, b] = data.studies;
    const libraries = [...new Set([...Object.keys(a.best_by_library), ...Object.keys(b.best_by_library)])].sort();
    const row = (label, f) => el("tr", {}, el("th", {}, label), el("td", {}, f(a)), el("td", {}, f(b)));
    document.querySelector("#sides tbody").replaceChildren(
      row("study", (s) => link(`/studies/${s.study_id}`, s.name)),
      row("state", (s) => s.state),
      row("trials", (s) => `${s.done} done, ${s.failed} failed of ${s.n_trials}`),
      row("best", (s) => `${fmt(s.best_score)} ${s.metric || ""}`),
      ...libraries.map((l) => row(`best ${l}`, (s) => {
        const t = s.best_by_library[l];
        return t ? `${fmt(t.score)} (${t.params})` : "-";
      })),
      row("fit time, s", (s) => fmt(s.fit_time_s, 1)));
    (await plotly).react("best", data.studies.map((s) => ({ x: s.steps.x, y: s.steps.y, name: s.name + " " + s.study_id.slice(-6),
      mode: "lines", type: "scatter", line: { shape: "hv", width: 3 } })),
      { template: "plotly_white", height: 360, margin: { t: 20, l: 60, r: 20, b: 40 }, xaxis: { title: { text: "seconds since the study's first result" } } },
      { displaylogo: false, responsive: true });
    window.tf.draws += 1;
  });
  refresh();
  live((changed) => { if (changed.some((id) => ids.includes(id))) refresh(); });
}

// -- a study ---------------------------------------------------------------------------------

function studyPage() {
  const table = { sort: "score", order: "desc", offset: 0, limit: 50 };
  const form = document.getElementById("filter");
  let libraries = null;
  let lastDone = -1;

  function drawProgress(s) {
    const p = s.progress;
    const finished = p.done + p.failed;
    const box = document.getElementById("progress");
    box.dataset.done = p.done; box.dataset.failed = p.failed; box.dataset.n = p.n_trials;
    box.querySelector(".bar span").style.width = `${p.n_trials ? (100 * finished) / p.n_trials : 0}%`;
    const rate = p.throughput_per_s ? `${(p.throughput_per_s * 60).toFixed(1)} trials/min` : "";
    const eta = p.eta_s ? `ETA ${Math.round(p.eta_s)} s` : "";
    box.querySelector(".counts").textContent =
      `${p.done} done, ${p.failed} failed, ${p.running} running, ${p.queued} queued of ` +
      `${p.n_trials} · best ${fmt(p.best_score)} ${p.metric || ""} ${rate ? "· " + rate : ""} ` +
      `${eta ? "· " + eta : ""}`;
    if (p.done !== lastDone) {
      window.tf.updates.push({ at: Date.now(), done: p.done, failed: p.failed });
      lastDone = p.done;
    }
  }

  async function drawBest(best) {
    const traces = Object.entries(best.points).map(([library, pts]) => ({
      x: pts.x, y: pts.y, text: pts.trial_id, name: library, mode: "markers", type: "scatter",
      marker: { size: 6, opacity: 0.6 },
    }));
    traces.push({ x: best.steps.x, y: best.steps.y, text: best.steps.trial_id, name: "best so far",
      mode: "lines", type: "scatter", line: { shape: "hv", width: 3, color: "black" } });
    (await plotly).react("best", traces, { template: "plotly_white", margin: { t: 20, l: 60, r: 20, b: 40 },
      xaxis: { title: { text: "finished at (UTC)" } }, height: 320 }, { displaylogo: false, responsive: true });
  }

  function trialRow(t) {
    return el("tr", { "data-trial-id": t.trial_id, class: t.status },
      el("td", {}, link(`/trials/${t.trial_id}`, t.trial_id.slice(0, 12))),
      el("td", {}, t.library), el("td", {}, t.status), num(t.score, 5), num(t.score_std, 4),
      num(t.fit_time_s, 2), el("td", { class: "num" }, t.attempts), el("td", {}, t.worker),
      el("td", {}, when(t.finished_at)), el("td", {}, t.status === "failed" ? (t.reason || t.error || "") : t.params));
  }

  function drawLeaderboard(board) {
    const box = document.getElementById("leaderboard");
    const parts = Object.entries(board).map(([library, rows]) => el("div", {},
      el("h3", {}, library),
      el("table", { class: "grid" }, el("thead", {}, el("tr", {}, ...["#", "trial", "score", "std", "fit s", "params"].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...rows.map((t, i) => el("tr", {}, el("td", {}, i + 1),
          el("td", {}, link(`/trials/${t.trial_id}`, t.trial_id.slice(0, 12))), num(t.score, 5),
          num(t.score_std, 4), num(t.fit_time_s, 2), el("td", {}, t.params)))))));
    box.replaceChildren(...(parts.length ? parts : [el("p", { class: "note" }, "No trial has finished successfully yet.")]));
  }

  function drawFailures(f) {
    const box = document.getElementById("failures");
    if (!f.count) { box.replaceChildren(el("p", { class: "note" }, "None.")); return; }
    box.replaceChildren(
      el("p", {}, `${f.count} failed trials. Reasons: `,
        ...f.reasons.map(([reason, n]) => el("span", { class: "state" }, `${reason} ×${n}`))),
      el("table", { class: "grid" }, el("tbody", {}, ...f.recent.map((t) => el("tr", {},
        el("td", {}, link(`/trials/${t.trial_id}`, t.trial_id.slice(0, 12))), el("td", {}, t.library),
        el("td", {}, t.reason || "-"), el("td", {}, el("code", {}, t.error || "")))))));
  }

  const refreshTable = serial(async () => {
    const params = new URLSearchParams(new FormData(form));
    for (const [k, v] of Object.entries(table)) params.set(k, v);
    const page = await getJSON(`/api/studies/${ID}/trials?${params}`);
    document.querySelector("#trials tbody").replaceChildren(...page.rows.map(trialRow));
    const count = document.getElementById("trials-count");
    count.dataset.matched = page.matched; count.dataset.total = page.total;
    const last = Math.min(page.offset + page.limit, page.matched);
    count.textContent = `${page.matched ? page.offset + 1 : 0}–${last} of ${page.matched} matching (${page.total} with a result)`;
    document.getElementById("prev").disabled = page.offset === 0;
    document.getElementById("next").disabled = last >= page.matched;
  });

  const refresh = serial(async () => {
    const s = await getJSON(`/api/studies/${ID}`);
    document.getElementById("title").textContent = s.name;
    document.getElementById("study-id").textContent = s.study_id;
    document.getElementById("state").textContent = s.state;
    document.getElementById("state").dataset.state = s.state;
    document.getElementById("cancelled").textContent = s.cancelled_at ? `cancelled ${when(s.cancelled_at)} (${s.cancel_reason || ""})` : "";
    if (libraries === null) {
      libraries = s.libraries;
      form.library.append(...libraries.map((l) => el("option", {}, l)));
    }
    drawProgress(s);
    drawLeaderboard(s.leaderboard);
    drawFailures(s.failures);
    await Promise.all([refreshTable(), drawBest(s.best)]);
    if (!window.tf.draws) window.tf.firstDraw = performance.now(); // since navigation began
    window.tf.draws += 1;
  });

  let figuresAt = 0, figuresTimer = null, figuresDrawn = 0;
  const drawFigures = serial(async () => {
    figuresAt = Date.now();
    const data = await getJSON(`/api/studies/${ID}/figures`);
    const box = document.getElementById("figures");
    const nodes = [];
    const plots = [];
    for (const part of data.sections) {
      if (part.html) { const div = el("div"); div.innerHTML = part.html; nodes.push(div); }
      else if (part.text) nodes.push(el("h3", {}, part.title), el("p", { class: "note" }, part.text));
      else {
        const div = el("div", { class: "plot" });
        nodes.push(div);
        if (part.note) nodes.push(el("p", { class: "note" }, part.note));
        plots.push([div, part.figure]);
      }
    }
    box.replaceChildren(...nodes);
    figuresDrawn = plots.length;
    const P = await plotly;
    for (const [div, fig] of plots) P.newPlot(div, fig.data, fig.layout, { displaylogo: false, responsive: true });
  });
  function figuresSoon() {
    if (figuresTimer) return;
    // The first figures as soon as there are any; then at most one redraw every 10 s.
    const wait = figuresDrawn ? Math.max(0, 10000 - (Date.now() - figuresAt)) : 0;
    figuresTimer = setTimeout(() => { figuresTimer = null; drawFigures(); }, wait);
  }

  form.addEventListener("input", () => { table.offset = 0; refreshTable(); });
  form.addEventListener("submit", (e) => e.preventDefault());
  document.getElementById("prev").onclick = () => { table.offset = Math.max(0, table.offset - table.limit); refreshTable(); };
  document.getElementById("next").onclick = () => { table.offset += table.limit; refreshTable(); };
  for (const th of document.querySelectorAll("#trials th[data-sort]")) {
    th.onclick = () => {
      table.order = table.sort === th.dataset.sort && table.order === "desc" ? "asc" : "desc";
      table.sort = th.dataset.sort; table.offset = 0; refreshTable();
    };
  }
  async function act(what) {
    const out = document.getElementById("action-result");
    out.textContent = `${what}…`; out.className = "note";
    const response = await fetch(`/api/studies/${ID}/${what}`, {
      method: "POST", headers: { Authorization: `Bearer ${token()}` } });
    const data = await response.json();
    out.dataset.status = response.status;
    if (response.ok) out.textContent = `${what}: done`;
    else { out.textContent = `${what} refused: ${data.error}`; out.className = "error"; }
    refresh();
  }
  document.getElementById("cancel").onclick = () => act("cancel");
  document.getElementById("resume").onclick = () => act("resume");
  document.getElementById("load-dead-letters").onclick = async () => {
    const box = document.getElementById("dead-letters");
    try {
      const data = await getJSON(`/api/studies/${ID}/dead-letters`);
      box.replaceChildren(data.dead_letters.length
        ? el("table", { class: "grid" }, el("tbody", {}, ...data.dead_letters.map((d) => el("tr", {},
          el("td", {}, when(d.dead_at ? new Date(d.dead_at * 1000).toISOString() : null)),
          el("td", {}, d.kind || "-"), el("td", {}, d.reason), el("td", {}, el("code", {}, d.preview))))))
        : el("p", { class: "note" }, `None of this study's among the ${data.read} dead letters read.`));
    } catch (e) { box.replaceChildren(el("p", { class: "error" }, String(e))); }
  };

  refresh().then(drawFigures);
  live((changed) => { if (changed.includes(ID)) { refresh(); figuresSoon(); } });
}

// -- a trial ---------------------------------------------------------------------------------

function trialPage() {
  const refresh = serial(async () => {
    const t = await getJSON(`/api/trials/${ID}`);
    document.getElementById("trial-id").textContent = t.trial_id;
    const study = document.getElementById("study-link");
    study.href = `/studies/${t.study_id}`; study.textContent = t.study_id;
    document.getElementById("status").textContent = t.status + (t.superseded ? " (superseded)" : "");
    const r = t.result || {};
    const rows = (pairs) => el("table", { class: "grid" }, el("tbody", {},
      ...pairs.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v)))));
    const parts = [];
    if (t.result) {
      parts.push(el("h2", {}, "Result"), rows([
        ["library", `${r.library} ${r.library_version || ""}`], ["score", `${fmt(r.score)} ± ${fmt(r.score_std, 4)} (${r.metric || ""})`],
        ["fit time", `${fmt(r.fit_time_s, 2)} s`], ["score time", `${fmt(r.score_time_s, 2)} s`],
        ["worker", r.worker], ["attempts", r.attempts], ["finished", when(r.finished_at_iso)],
        ["reason", r.reason || "-"]]));
      parts.push(el("h2", {}, "Parameters"), rows(Object.entries(r.params).sort()));
      parts.push(el("h2", {}, "Fold scores"), rows((r.fold_scores || []).map((s, i) => [`fold ${i + 1}`, fmt(s)])));
      if (r.error) parts.push(el("h2", {}, "Error"), el("pre", {}, r.error));
    }
    parts.push(el("h2", {}, "Attempts"), el("table", { class: "grid" },
      el("thead", {}, el("tr", {}, el("th", {}, "attempt"), el("th", {}, "worker"), el("th", {}, "started (UTC)"), el("th", {}, "revision"))),
      el("tbody", {}, ...t.starts.map((s) => el("tr", {}, el("td", {}, s.attempt), el("td", {}, s.worker), el("td", {}, when(s.started_at)), el("td", {}, s.revision))))));
    parts.push(el("h2", {}, "Model"));
    if (t.model && t.model.status === "done") {
      parts.push(el("p", {}, link(`/api/trials/${t.trial_id}/model`, `download (${t.model.format}, ${t.model.size} bytes)`),
        el("span", { class: "note" }, ` sha256 ${t.model.sha256}`)));
    } else if (t.model) {
      parts.push(el("p", { class: "error" }, `refit failed: ${t.model.error || ""}`));
    } else {
      parts.push(el("p", { class: "note" }, "Not refitted: tunefleet refit STUDY --trial " + t.trial_id.slice(0, 12)));
    }
    document.getElementById("trial").replaceChildren(...parts);
    window.tf.draws += 1;
  });
  refresh();
  live(() => refresh());
}

// -- the fleet -------------------------------------------------------------------------------

function fleetPage() {
  const tbody = document.querySelector("#workers tbody");
  const refresh = serial(async () => {
    const data = await getJSON("/api/fleet");
    tbody.replaceChildren(...data.workers.map((w) => el("tr", { "data-worker": w.worker },
      el("td", {}, w.worker),
      el("td", {}, ...w.running.map((r) => el("div", {}, link(`/trials/${r.trial_id}`, r.trial_id.slice(0, 12)), ` since ${when(r.since)}`))),
      el("td", {}, when(w.last_seen)), el("td", { class: "num" }, w.idle_s),
      el("td", { class: "num" }, w.per_min), el("td", { class: "num" }, w.done), el("td", { class: "num" }, w.failed))));
    document.getElementById("empty").hidden = data.workers.length > 0;
    window.tf.draws += 1;
  });
  refresh();
  live(() => refresh());
  setInterval(refresh, 5000); // starts carry no event of their own: what runs is re-read
}

({ studies: studiesPage, study: studyPage, trial: trialPage, fleet: fleetPage, compare: comparePage })[PAGE]();
