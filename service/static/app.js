// blurtrack live view: polls the service's JSON API, draws the watched session's latest frame with
// its box and a one-minute latency/score chart, and runs demo sequences through real sessions.
// Plain ES module, no dependencies. Everything it shows comes from /v1 (see service/API.md).

const KEY_STORAGE = "blurtrack.apiKey";
const SESSIONS_POLL_MS = 1000;
const HISTORY_POLL_MS = 1000;
const DEMO_MAX_FPS = 25; // the demo is paced like a camera, not as fast as the server answers
const BOX_COLORS = { tracking: "#00d25a", lost: "#ff3b30" };
const CHART = { latency: "#4ea1ff", score: "#f5b301", lost: "#ff3b30", grid: "#2a3346", text: "#8d97ab" };

const $ = (id) => document.getElementById(id);

// What the page shows, for people debugging it and for the browser test.
const view = {
  session: null, // id of the watched session
  ended: false, // it ended while watched (the last frame stays on screen)
  seq: null, // stream seq of the frame on the canvas
  state: null,
  score: null,
  frameBox: null, // [x, y, w, h] in frame pixels, as the service sent it with the preview
  frameSize: null, // [width, height] of the frame
  canvasBox: null, // the drawn box in canvas pixels
  canvasSize: null,
  boxColor: null,
  chart: { samples: 0, latencyMax: null },
  demo: { status: "idle", session: null, sent: 0, total: 0 },
};
window.blurtrackView = view;

class AuthRequired extends Error {}
class ApiFailure extends Error {
  constructor(status, code, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// -- API access -------------------------------------------------------------------------------

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = apiKey();
  if (key) headers.set("Authorization", `Bearer ${key}`);
  const response = await fetch(path, { ...options, headers, cache: "no-store" });
  if (response.status === 401) {
    askForKey(key ? "That key was refused." : "");
    throw new AuthRequired();
  }
  return response;
}

async function failure(response) {
  const body = await response.json().catch(() => ({}));
  return new ApiFailure(response.status, body.code, body.detail);
}

async function apiJson(path, options) {
  const response = await api(path, options);
  if (!response.ok) throw await failure(response);
  return response.status === 204 ? null : response.json();
}

// -- API key form -----------------------------------------------------------------------------

let started = false;

function askForKey(message) {
  started = false;
  $("key-form").hidden = false;
  $("key-error").textContent = message;
  $("sessions-empty").textContent = "Enter the API key to see the sessions.";
  $("key-input").focus();
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("key-input").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORAGE, key);
  $("key-input").value = "";
  $("key-form").hidden = true;
  start();
});

// -- server status and the session list ----------------------------------------------------------

async function showServerStatus() {
  for (;;) {
    const response = await fetch("/readyz", { cache: "no-store" }).catch(() => null);
    const body = response ? await response.json().catch(() => ({})) : {};
    if (body.ready) {
      const b = body.backend || {};
      $("server-status").textContent = `ready · ${b.backend || "?"} on ${b.device || "?"} · bundle ${b.bundle || "?"}`;
      return;
    }
    $("server-status").textContent = body.detail ? `not ready: ${body.detail}` : "server unreachable";
    await sleep(2000);
  }
}

async function pollSessions() {
  while (started) {
    try {
      const list = await apiJson("/v1/sessions");
      renderSessions(list.sessions);
    } catch (error) {
      if (error instanceof AuthRequired) return;
      $("sessions-empty").textContent = `Cannot list sessions: ${error.message}`;
      $("sessions-empty").hidden = false;
    }
    await sleep(SESSIONS_POLL_MS);
  }
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function renderSessions(sessions) {
  const body = $("sessions").tBodies[0];
  body.replaceChildren();
  for (const s of sessions) {
    const row = body.insertRow();
    row.dataset.session = s.session_id;
    row.title = `${s.session_id} · click to watch`;
    if (s.session_id === view.session) row.classList.add("watched");
    cell(row, s.session_id.slice(0, 8), "mono");
    cell(row, s.state, `state ${s.state}`);
    cell(row, `${s.frames_processed} / ${s.frames_dropped}`, "num");
    cell(row, s.fps.toFixed(1), "num");
    cell(row, s.score.toFixed(2), "num");
    row.addEventListener("click", () => watch(s.session_id));
  }
  $("sessions-empty").textContent = "No live sessions.";
  $("sessions-empty").hidden = sessions.length > 0;
  // A newcomer sees something at once: watch the newest session when nothing is watched.
  if ((view.session === null || view.ended) && sessions.length > 0) {
    const newest = sessions[sessions.length - 1].session_id;
    if (newest !== view.session) watch(newest);
  }
}

// -- watching one session ---------------------------------------------------------------------

let watcher = null;

function watch(sessionId) {
  if (watcher && watcher.id === sessionId && !view.ended) return;
  if (watcher) watcher.stop();
  Object.assign(view, { session: sessionId, ended: false, seq: null, state: null, frameBox: null, canvasBox: null });
  view.chart = { samples: 0, latencyMax: null };
  $("view-id").textContent = sessionId.slice(0, 8);
  $("view-id").title = sessionId;
  setStatePill(null);
  $("view-stats").textContent = "waiting for the first preview frame…";
  for (const row of $("sessions").tBodies[0].rows) row.classList.toggle("watched", row.dataset.session === sessionId);
  watcher = new Watcher(sessionId);
  watcher.run();
}

class Watcher {
  constructor(id) {
    this.id = id;
    this.stopped = false;
    this.intervalMs = 250;
    this.path = `/v1/sessions/${encodeURIComponent(id)}`;
  }

  stop() {
    this.stopped = true;
    // Others watching the same session turn it back on; a closed tab is switched off by the server.
    if (!view.ended) api(`${this.path}/preview`, jsonBody("PUT", { enabled: false })).catch(() => {});
  }

  ended() {
    if (this.stopped) return;
    this.stopped = true;
    view.ended = true;
    setStatePill("ended");
    $("view-stats").textContent += " · session ended";
  }

  async run() {
    this.previewLoop();
    this.historyLoop();
  }

  async enablePreview() {
    const status = await apiJson(`${this.path}/preview`, jsonBody("PUT", { enabled: true }));
    this.intervalMs = Math.max(100, 1000 / status.max_fps);
  }

  async previewLoop() {
    try {
      await this.enablePreview();
    } catch (error) {
      if (error instanceof ApiFailure && error.code === "unknown_session") return this.ended();
      if (error instanceof AuthRequired) return;
    }
    while (!this.stopped) {
      try {
        const response = await api(`${this.path}/preview.jpg`);
        if (response.ok) {
          const meta = previewMeta(response.headers);
          const bitmap = await createImageBitmap(await response.blob());
          if (!this.stopped) drawFrame(bitmap, meta);
          bitmap.close();
        } else {
          const error = await failure(response);
          if (error.code === "unknown_session") return this.ended();
          if (error.code === "preview_off") await this.enablePreview(); // switched off by another viewer or idle
          // no_preview: no frame processed since it was turned on; try again shortly
        }
      } catch (error) {
        if (error instanceof AuthRequired) return;
        if (error instanceof ApiFailure && error.code === "unknown_session") return this.ended();
      }
      await sleep(this.intervalMs);
    }
  }

  async historyLoop() {
    while (!this.stopped) {
      try {
        drawChart(await apiJson(`${this.path}/history`));
      } catch (error) {
        if (error instanceof AuthRequired) return;
        if (error instanceof ApiFailure && error.code === "unknown_session") return this.ended();
      }
      await sleep(HISTORY_POLL_MS);
    }
  }
}

function jsonBody(method, value) {
  return { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(value) };
}

function previewMeta(headers) {
  const [frameWidth, frameHeight] = headers.get("X-Preview-Frame-Size").split("x").map(Number);
  return {
    seq: Number(headers.get("X-Preview-Seq")),
    box: headers.get("X-Preview-Box").split(",").map(Number),
    state: headers.get("X-Preview-State"),
    score: Number(headers.get("X-Preview-Score")),
    frameWidth,
    frameHeight,
  };
}

function setStatePill(state) {
  const pill = $("view-state");
  pill.textContent = state || "";
  pill.className = state ? `pill ${state}` : "pill";
}

/** Size a canvas's pixel buffer to its displayed size (sharp lines on any screen). */
function fitCanvas(canvas, aspect) {
  const dpr = window.devicePixelRatio || 1;
  if (aspect) canvas.style.aspectRatio = String(aspect);
  const width = Math.round(canvas.clientWidth * dpr);
  const height = Math.round(aspect ? width / aspect : canvas.clientHeight * dpr);
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  return dpr;
}

function drawFrame(bitmap, meta) {
  const canvas = $("frame");
  const dpr = fitCanvas(canvas, meta.frameWidth / meta.frameHeight);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  // The box is in frame pixels; the preview image was shrunk, the canvas shows it at its own size.
  const k = canvas.width / meta.frameWidth;
  const box = meta.box.map((v) => v * k);
  const color = BOX_COLORS[meta.state] || BOX_COLORS.lost;
  ctx.lineWidth = Math.max(2, Math.round(2 * dpr));
  ctx.strokeStyle = color;
  ctx.strokeRect(box[0], box[1], box[2], box[3]);

  Object.assign(view, {
    seq: meta.seq,
    state: meta.state,
    score: meta.score,
    frameBox: meta.box,
    frameSize: [meta.frameWidth, meta.frameHeight],
    canvasBox: box,
    canvasSize: [canvas.width, canvas.height],
    boxColor: color,
  });
  canvas.dataset.seq = String(meta.seq);
  canvas.dataset.state = meta.state;
  canvas.dataset.box = box.map((v) => v.toFixed(1)).join(",");
  setStatePill(meta.state);
  const shown = meta.box.map((v) => v.toFixed(1)).join(", ");
  $("view-stats").textContent = `frame ${meta.seq} · ${meta.state} · score ${meta.score.toFixed(3)} · box ${shown} · ${meta.frameWidth}×${meta.frameHeight}`;
}

// -- the chart: latency (left axis, ms) and score (right axis, 0..1) over the last minute ---------

function niceMax(value) {
  const step = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map((m) => m * step).find((v) => v >= value);
}

function drawChart(history) {
  const canvas = $("chart");
  const dpr = fitCanvas(canvas, null);
  const ctx = canvas.getContext("2d");
  const w = canvas.width;
  const h = canvas.height;
  const pad = { left: 44 * dpr, right: 34 * dpr, top: 8 * dpr, bottom: 20 * dpr };
  const plotW = w - pad.left - pad.right;
  const plotH = h - pad.top - pad.bottom;
  const window_s = history.window_s;
  const x = (t) => pad.left + ((t + window_s) / window_s) * plotW;
  ctx.clearRect(0, 0, w, h);
  ctx.font = `${11 * dpr}px system-ui, sans-serif`;
  ctx.lineWidth = 1;

  const n = history.t.length;
  const latencyMax = niceMax(Math.max(1, ...history.latency_ms) * 1.1);
  const yLatency = (v) => pad.top + plotH * (1 - Math.min(v, latencyMax) / latencyMax);
  const yScore = (v) => pad.top + plotH * (1 - v);

  // grid and axes
  ctx.strokeStyle = CHART.grid;
  ctx.fillStyle = CHART.text;
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (let t = -window_s; t <= 0; t += 10) {
    ctx.beginPath();
    ctx.moveTo(x(t), pad.top);
    ctx.lineTo(x(t), pad.top + plotH);
    ctx.stroke();
    ctx.fillText(t === 0 ? "now" : `${t}s`, x(t), pad.top + plotH + 4 * dpr);
  }
  ctx.textBaseline = "middle";
  for (const f of [0, 0.5, 1]) {
    const y = pad.top + plotH * (1 - f);
    ctx.beginPath();
    ctx.moveTo(pad.left, y);
    ctx.lineTo(pad.left + plotW, y);
    ctx.stroke();
    ctx.textAlign = "right";
    ctx.fillText(`${+(latencyMax * f).toFixed(1)}`, pad.left - 6 * dpr, y);
    ctx.textAlign = "left";
    ctx.fillText(f.toFixed(1), pad.left + plotW + 6 * dpr, y);
  }

  if (n === 0) {
    ctx.textAlign = "center";
    ctx.fillText("no frames in the last minute", pad.left + plotW / 2, pad.top + plotH / 2);
  }
  // lost frames: ticks along the bottom
  ctx.fillStyle = CHART.lost;
  for (let i = 0; i < n; i++) {
    if (history.state[i] === "lost") ctx.fillRect(x(history.t[i]) - dpr, pad.top + plotH - 6 * dpr, 2 * dpr, 6 * dpr);
  }
  const line = (values, y, color) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5 * dpr;
    ctx.beginPath();
    for (let i = 0; i < n; i++) {
      if (i === 0) ctx.moveTo(x(history.t[i]), y(values[i]));
      else ctx.lineTo(x(history.t[i]), y(values[i]));
    }
    ctx.stroke();
  };
  line(history.score, yScore, CHART.score);
  line(history.latency_ms, yLatency, CHART.latency);
  view.chart = { samples: n, latencyMax };
  canvas.dataset.samples = String(n);
}

// -- demo: stream a sequence from the server's demo folder through a real session ---------------

let demoSequences = [];
let demoRun = null;

async function loadDemo() {
  const list = await apiJson("/v1/demo/sequences");
  demoSequences = list.sequences;
  $("demo-off").hidden = list.enabled && list.sequences.length > 0;
  $("demo-on").hidden = !$("demo-off").hidden;
  $("demo-off").textContent = list.hint;
  const select = $("demo-sequence");
  select.replaceChildren(
    ...list.sequences.map((s, i) => new Option(`${s.name} (${s.frames} frames)`, String(i)))
  );
}

function demoStatus(text, status) {
  $("demo-status").textContent = text;
  if (status) view.demo.status = status;
}

async function fetchDemoFrame(name, index) {
  const response = await api(`/v1/demo/sequences/${name.split("/").map(encodeURIComponent).join("/")}/frames/${index}`);
  if (!response.ok) throw await failure(response);
  return response.blob();
}

/** Reads a WebSocket's JSON messages one at a time. */
function messageReader(ws) {
  const queue = [];
  const waiting = [];
  let closed = null;
  ws.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (waiting.length) waiting.shift().resolve(message);
    else queue.push(message);
  });
  ws.addEventListener("close", (event) => {
    closed = new Error(`stream closed (${event.code}${event.reason ? `: ${event.reason}` : ""})`);
    while (waiting.length) waiting.shift().reject(closed);
  });
  return () => {
    if (queue.length) return Promise.resolve(queue.shift());
    if (closed) return Promise.reject(closed);
    return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
  };
}

function openStream(streamUrl) {
  const url = new URL(streamUrl, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const key = apiKey();
  if (key) url.searchParams.set("token", key); // browsers cannot set headers on a WebSocket
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const next = messageReader(ws);
  return new Promise((resolve, reject) => {
    ws.addEventListener("open", () => resolve({ ws, next }), { once: true });
    ws.addEventListener("error", () => reject(new Error("could not open the stream")), { once: true });
  });
}

async function runDemo() {
  const sequence = demoSequences[Number($("demo-sequence").value)];
  if (!sequence) return;
  if (view.demo.session) await endDemoSession();
  const run = { stopped: false, ws: null };
  demoRun = run;
  $("demo-run").textContent = "Stop";
  view.demo = { status: "starting", session: null, sent: 0, total: sequence.frames - 1, sequence: sequence.name };
  demoStatus(`opening a session on ${sequence.name}…`);
  try {
    const form = new FormData();
    form.append("frame", await fetchDemoFrame(sequence.name, 0), "frame-0");
    form.append("box", sequence.first_box.join(","));
    const created = await apiJson("/v1/sessions", { method: "POST", body: form });
    view.demo.session = created.session_id;
    $("demo-end").hidden = false;
    watch(created.session_id);
    const { ws, next } = await openStream(created.stream_url);
    run.ws = ws;
    view.demo.status = "running";
    let upcoming = fetchDemoFrame(sequence.name, 1).catch((error) => error);
    for (let i = 1; i < sequence.frames && !run.stopped; i++) {
      const began = performance.now();
      const frame = await upcoming;
      if (i + 1 < sequence.frames) upcoming = fetchDemoFrame(sequence.name, i + 1).catch((error) => error);
      if (frame instanceof Error) continue; // a gap in the sequence: skip the frame
      ws.send(await frame.arrayBuffer());
      const message = await next(); // lockstep: one frame in flight, nothing dropped
      if (message.type === "error" && message.seq === undefined) throw new Error(message.message);
      view.demo.sent = i;
      const said = message.type === "result" ? `${message.state} · score ${message.score.toFixed(2)} · ${message.latency_ms.total.toFixed(1)} ms` : message.message;
      demoStatus(`frame ${i} / ${sequence.frames - 1}: ${said}`);
      await sleep(1000 / DEMO_MAX_FPS - (performance.now() - began));
    }
    if (run.stopped) {
      ws.send(JSON.stringify({ type: "close" })); // ends the session
      demoStatus(`stopped after ${view.demo.sent} frames; the session is closed.`, "stopped");
      $("demo-end").hidden = true;
      view.demo.session = null;
    } else {
      ws.close(1000); // without {"type":"close"}: the session stays, its last frame on screen
      demoStatus(`finished ${view.demo.sent} frames. The session stays for a look until it expires.`, "finished");
    }
  } catch (error) {
    if (!(error instanceof AuthRequired)) demoStatus(`demo failed: ${error.message}`, "failed");
    if (run.ws) run.ws.close();
  } finally {
    if (demoRun === run) demoRun = null;
    $("demo-run").textContent = "Run demo";
  }
}

async function endDemoSession() {
  const id = view.demo.session;
  view.demo.session = null;
  $("demo-end").hidden = true;
  if (id) await api(`/v1/sessions/${encodeURIComponent(id)}`, { method: "DELETE" }).catch(() => {});
}

$("demo-run").addEventListener("click", () => {
  if (demoRun) demoRun.stopped = true;
  else runDemo();
});
$("demo-end").addEventListener("click", () => {
  endDemoSession().then(() => demoStatus("the demo session was ended.", "ended"));
});

// -- start --------------------------------------------------------------------------------------

async function start() {
  if (started) return;
  started = true;
  if (watcher) {
    // (re)started after a key was entered: the old watcher's loops stopped at the 401
    watcher.stopped = true;
    watcher = null;
    view.session = null;
  }
  showServerStatus();
  try {
    await loadDemo();
  } catch (error) {
    if (error instanceof AuthRequired) return;
    $("demo-off").hidden = false;
    $("demo-off").textContent = `Cannot list demo sequences: ${error.message}`;
  }
  view.ready = true;
  pollSessions();
}

start();
