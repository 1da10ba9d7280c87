// The ITB pump lab page. The pump is the unchanged firmware core running in
// MicroPython (WebAssembly), on the emulator's own hardware and patient models
// (emulator/lab.py drives them). This file only draws and forwards input:
// it steps time by calling the Python Lab, sends the buttons' actions to it,
// and draws what Lab.view() returns. Educational, not a medical device.
import { loadMicroPython } from "./node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const SCENARIO = params.get("scenario") || "catheter-kink";
const DAYS = Math.max(0, parseFloat(params.get("days") || "0") || 0);
// ?autoplay=SPEED starts the run by itself (demos, screenshots): a speed (1, 60, 3600, ...) or "end"
const AUTOPLAY = params.get("autoplay");
const DAY = 86400000;

const app = {
  ready: false, error: null, speed: 0, lastSpeed: 60, finished: false, busy: false,
  evN: 0, ptN: 0, sndN: 0, points: [], view: null, info: null, result: null,
  frames: 0, framesTotal: 0, fps: 0, fpsT: 0, lastFrame: 0, muted: false, audio: null, soundUntil: 0,
  lastRunMs: null, dirtyPlots: true, ticks: {}, readyText: "",
  spans: [], openSpans: {},
};

// faults that last until a repair ends them (shaded from one to the other on the plots)
const SPAN_END = { block: ["release", "revise_catheter"], kink: ["release", "revise_catheter"],
                   disconnect: ["revise_catheter"], leak: ["revise_catheter"], migrate: ["revise_catheter"],
                   jam: ["repair_motor"] };

// a row of the event log -> the spans shaded on the plots: [t0, t1 or null (open), name, "fault"|"clinic"]
function noteSpan(t, src, kind, code) {
  if (src === "world" && kind === "repair") {
    for (const [name, span] of Object.entries(app.openSpans)) {
      if (SPAN_END[name].includes(code)) { span[1] = t; delete app.openSpans[name]; }
    }
  } else if (src === "world" && kind === "fault") {
    if (SPAN_END[code]) {
      if (!app.openSpans[code]) { const sp = [t, null, code, "fault"]; app.spans.push(sp); app.openSpans[code] = sp; }
    } else app.spans.push([t, t, code, "fault"]);
  } else if (src === "clinic") {
    app.spans.push([t, t, String(code).split(" ")[0], "clinic"]);
  } else return;
  app.dirtyPlots = true;
}
window.labApp = app;

// ---------------------------------------------------------------- formatting
function fmtTime(ms) {
  const s = Math.floor(ms / 1000), d = Math.floor(s / 86400), r = s % 86400;
  const p2 = (n) => String(n).padStart(2, "0");
  return `${d}d ${p2(Math.floor(r / 3600))}:${p2(Math.floor(r % 3600 / 60))}:${p2(r % 60)}`;
}
const mL = (nl) => (nl / 1e6).toFixed(3) + " mL";
function setText(id, text) { const el = $(id); if (el.textContent !== String(text)) el.textContent = text; }

// ---------------------------------------------------------------- boot
async function fetchText(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.text();
}

function mkdirs(FS, path) {
  let p = "";
  for (const part of path.split("/").slice(1, -1)) {
    p += "/" + part;
    try { FS.mkdir(p); } catch (e) { /* exists */ }
  }
}

async function boot() {
  const manifest = JSON.parse(await fetchText("build/manifest.json"));
  const index = JSON.parse(await fetchText("build/presets/index.json"));
  setText("mp-version", manifest.micropython);
  const sel = $("preset");
  const known = index.some((p) => p.name === SCENARIO);
  if (!known) {
    // an unknown ?scenario=: the list says so, and every preset can be chosen from it
    const o = document.createElement("option");
    o.value = "";
    o.textContent = "— choose a preset —";
    o.disabled = true;
    o.selected = true;
    sel.appendChild(o);
  }
  for (const p of index) {
    const o = document.createElement("option");
    o.value = p.name;
    o.textContent = `${p.name} (${Math.round(p.duration_ms / DAY)} d)`;
    if (p.name === SCENARIO) o.selected = true;
    sel.appendChild(o);
  }
  sel.addEventListener("change", () => {
    if (!sel.value) return;
    const q = new URLSearchParams(location.search);
    q.set("scenario", sel.value);
    q.delete("days");
    location.search = q.toString();
  });
  const list = $("ex-list");
  for (const ex of manifest.exercises) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = "build/docs/" + ex.file;
    a.textContent = ex.title;
    li.appendChild(a);
    if (ex.preset) {
      li.append(" — preset ");
      const b = document.createElement("a");
      b.href = "?scenario=" + encodeURIComponent(ex.preset);
      b.textContent = ex.preset;
      li.appendChild(b);
    }
    if (ex.index) {
      const para = document.createElement("p");
      para.append("How the lab works, and the exercises: ", a);
      list.before(para);
    } else list.appendChild(li);
  }
  if (!known) {
    throw new Error(`no preset called "${SCENARIO}"; pick one from the list`);
  }
  const [preset, profile, ...sources] = await Promise.all([
    fetchText(`build/presets/${encodeURIComponent(SCENARIO)}.json`),
    fetchText("build/boards/sim.json"),
    ...manifest.py.map((rel) => fetchText("build/py/" + rel)),
  ]);
  const mp = await loadMicroPython({
    heapsize: 128 * 1024 * 1024,
    stdout: (line) => console.log(line), stderr: (line) => console.error(line),
  });
  manifest.py.forEach((rel, i) => {
    const path = "/lab/" + rel;
    mkdirs(mp.FS, path);
    mp.FS.writeFile(path, sources[i]);
  });
  mp.globals.set("PRESET_TEXT", preset);
  mp.globals.set("PROFILE_TEXT", profile);
  mp.runPython(`import sys
sys.path.insert(0, "/lab")
from emulator.lab import Lab
LAB = Lab.from_json(PRESET_TEXT, PROFILE_TEXT, ${DAYS})
del PRESET_TEXT, PROFILE_TEXT`);
  app.mp = mp;
  app.lab = mp.globals.get("LAB");
  app.info = JSON.parse(app.lab.info());
  setText("preset-title", app.info.title);
  setText("preset-description", app.info.description || "");
  const ack = $("ack-alarm");
  for (const n of app.info.alarm_names) {
    const o = document.createElement("option");
    o.value = o.textContent = n;
    ack.appendChild(o);
  }
  refresh();
  const prog = app.view.pump.program;
  if (prog) {
    $("refill-conc").value = prog.concentration_ug_ml;
    $("refill-actual").value = prog.concentration_ug_ml === 2000 ? 500 : 2000;
    loadProgramIntoForm(prog);
  }
  app.readyText = `${app.info.name}, seed ${app.info.seed}${DAYS ? `, cut to ${DAYS} days` : ""}`;
  app.ready = true;
  showStatus();
  document.body.dataset.ready = "yes";
  if (AUTOPLAY) {
    if (AUTOPLAY === "end") runToEnd();
    else {
      const sp = Number(AUTOPLAY);
      if (Number.isFinite(sp) && sp > 0) setSpeed(sp);
      else setText("boot", `?autoplay=${AUTOPLAY} is not a speed (a number such as 60, or "end"); ` +
                   "press a speed or “Run to the end”.");
    }
  }
}

// the line under the title says what the run is doing now
function showStatus() {
  if (!app.ready || app.error) return;
  let text;
  if (app.busy) text = `Running to the end: ${app.readyText}…`;
  else if (app.finished) text = `Finished: ${app.readyText}` +
    (app.lastRunMs !== null ? `, in ${(app.lastRunMs / 1000).toFixed(1)} s of real time.` : ".");
  else if (app.speed > 0) text = `Running at ${app.speed}× real time: ${app.readyText}. Space or ⏸ pauses.`;
  else if (app.view && app.view.t_ms > 0) text = `Paused at ${fmtTime(app.view.t_ms)}: ${app.readyText}. ` +
    "Press a speed, “Next event” or “Run to the end”.";
  else text = `Ready: ${app.readyText}. Press a speed or “Run to the end”.`;
  setText("boot", text);
}

// ---------------------------------------------------------------- calling Python
function call(fn, ...args) {
  try {
    // whole numbers travel as text: the bridge would cut them to 32 bits
    return JSON.parse(app.lab[fn](...args.map((a) => (typeof a === "number" ? String(a) : a))));
  } catch (e) {
    showError(e);
    throw e;
  }
}

function showError(e) {
  app.error = String(e && e.message ? e.message : e);
  console.error(e);
  setText("boot", "Error: " + app.error);
  document.body.dataset.error = app.error;
  setSpeed(0);
}

function refresh() {
  const v = call("view", app.evN, app.ptN, app.sndN);
  app.view = v;
  const tb = $("events").tBodies[0];
  const frag = document.createDocumentFragment();
  for (const [t, src, kind, code] of v.events) noteSpan(t, src, kind, code);
  for (let i = v.events.length - 1; i >= 0; i--) {
    const [t, src, kind, code, detail] = v.events[i];
    const tr = document.createElement("tr");
    tr.className = `src-${src} kind-${kind}`;
    for (const c of [fmtTime(t), src, kind, code, detail]) {
      const td = document.createElement("td");
      td.textContent = c;
      tr.appendChild(td);
    }
    frag.appendChild(tr);
  }
  if (v.events.length) {
    tb.prepend(frag);
    while (tb.rows.length > 400) tb.deleteRow(-1);
  }
  app.evN = v.events_n;
  for (const p of v.points) app.points.push(p);
  if (v.points.length) app.dirtyPlots = true;
  app.ptN = v.points_n;
  if (v.sounds_n > app.sndN && v.sounds.length) playPattern(v.sounds[v.sounds.length - 1]);
  app.sndN = v.sounds_n;
  app.finished = v.finished;
  draw(v);
  if (v.finished && !app.result) finalResult();
}

function finalResult() {
  app.result = call("result", true);
  const r = app.result;
  const ul = $("final-list");
  ul.textContent = "";
  const add = (text, ok) => {
    const li = document.createElement("li");
    // ok: true (held), false (failed), null (not checked: the run gave it nothing to judge)
    li.textContent = (ok === undefined ? "" : ok === null ? "– " : ok ? "✓ " : "✗ ") + text;
    ul.appendChild(li);
    return li;
  };
  add(`Delivered ${mL(r.delivered_nl)} (${r.delivered_nl} nL, ${r.delivered_strokes} strokes); ` +
      `programmed ${mL(r.scheduled_nl || 0)}; final state ${r.final_state}.`);
  for (const c of r.checks) {
    add(`${c.id} ${c.name}: ${c.ok === null ? "not checked: " : ""}${c.detail} (covered ${c.covered})`, c.ok);
  }
  for (const x of r.expectations) add(`expected: ${x.expect}`, x.ok);
  $("final").hidden = false;
}

// ---------------------------------------------------------------- drawing
function draw(v) {
  setText("t-text", fmtTime(v.t_ms));
  setText("end-text", fmtTime(v.end_ms));
  setText("wall-text", v.pump.wall);
  $("progress").value = Math.round(1000 * v.t_ms / Math.max(1, v.end_ms));
  const p = v.pump;
  setText("f-state", p.state.replaceAll("_", " "));
  if (p.mode === null) setText("f-mode", "no program");
  else {
    const prog = p.program;
    let m = p.mode;
    if (p.mode === "continuous") m += `, ${prog.daily_dose_ug} µg/day`;
    if (p.mode === "flex") m += `, ${prog.steps.length} steps, ${p.daily_dose_ug} µg/day`;
    setText("f-mode", `${m} at ${prog.concentration_ug_ml} µg/mL (limits ${prog.max_daily_ug} µg/24 h, ${prog.max_hourly_ug} µg/h)`);
  }
  setText("f-rate", `${p.rate_ug_day} µg/day` + (p.state === "running" || p.state === "safe_mode" ? "" : " (not delivering)"));
  setText("f-res", `${mL(p.reservoir_nl)} of ${mL(p.capacity_nl)}`);
  setText("f-days", p.days_left === null ? "–" : `${p.days_left} days`);
  setText("f-res-real", `${mL(p.reservoir_real_nl)} at ${p.real_concentration_ug_ml} µg/mL`);
  const names = v.active.map((a) => a.alarm);
  let batt = `${(p.battery_permille / 10).toFixed(1)} % (ERI at ${p.eri_permille / 10} %, EOS at ${p.eos_permille / 10} %)`;
  if (names.includes("battery_eos")) batt += " — EOS: end of service, the pump has stopped";
  else if (names.includes("battery_eri")) batt += " — ERI: replace the pump soon";
  setText("f-batt", batt);
  $("batt-meter").value = p.battery_permille;
  $("batt-meter").low = p.eri_permille;
  setText("f-cath", p.catheter + (p.catheter_migrated ? ", tip migrated out of the intrathecal space" : "") +
          (p.motor_jammed ? "; motor jammed" : ""));
  setText("delivered-text", mL(v.delivered_nl));
  setText("delivered-nl", v.delivered_nl);
  setText("delivered-strokes", v.delivered_strokes);
  drawLamp(v.active);
  const key = JSON.stringify(v.active);
  if (key !== app.activeKey) {
    app.activeKey = key;
    const ul = $("active-alarms");
    ul.textContent = "";
    for (const a of v.active) {
      const li = document.createElement("li");
      li.className = a.critical ? "critical" : "alert";
      li.textContent = `${a.alarm} — ${a.critical ? "critical, two-tone" : a.resolved
        ? "cause gone, single tone until acknowledged" : "non-critical, single tone"}`;
      ul.appendChild(li);
    }
    if (!v.active.length) ul.innerHTML = "<li>none</li>";
  }
  const skey = JSON.stringify(v.alarms);
  if (skey !== app.summaryKey) {
    app.summaryKey = skey;
    const tb = $("alarm-summary").tBodies[0];
    tb.textContent = "";
    for (const a of v.alarms) {
      const tr = tb.insertRow();
      tr.dataset.alarm = a.alarm;
      tr.dataset.firstMs = a.first_raised_ms;
      tr.dataset.raised = a.raised;
      tr.dataset.cleared = JSON.stringify(a.cleared_ms);
      for (const c of [a.alarm, a.critical ? "▲ critical" : "● non-critical", fmtTime(a.first_raised_ms),
                       String(a.raised), a.cleared_ms.length ? fmtTime(a.cleared_ms[0]) : "not cleared"]) {
        tr.insertCell().textContent = c;
      }
    }
  }
  const fkey = JSON.stringify(v.flags);
  if (fkey !== app.flagKey) {
    app.flagKey = fkey;
    const ul = $("flags");
    ul.textContent = "";
    for (const f of v.flags) {
      const li = document.createElement("li");
      li.dataset.flag = f.flag;
      li.dataset.tMs = f.t_ms;
      li.textContent = `${f.flag.replace("_", " ")} at ${fmtTime(f.t_ms)}` + (f.why ? ` (${f.why})` : "");
      ul.appendChild(li);
    }
    if (!v.flags.length) ul.innerHTML = "<li>none</li>";
    app.dirtyPlots = true;
  }
  if (app.dirtyPlots) { drawPlots(v); app.dirtyPlots = false; }
}

function drawLamp(active) {
  const lamp = $("lamp");
  const crit = active.filter((a) => a.critical), other = active.filter((a) => !a.critical);
  let cls, shape, text;
  if (crit.length) {
    cls = "lamp critical blink"; shape = "▲";
    text = `CRITICAL ALARM: ${crit.map((a) => a.alarm).join(", ")}` + (other.length ? `; also ${other.map((a) => a.alarm).join(", ")}` : "") + " (two-tone)";
  } else if (other.length) {
    cls = "lamp alert"; shape = "●";
    text = `ALERT: ${other.map((a) => a.alarm + (a.resolved ? " (acknowledge it)" : "")).join(", ")} (single tone)`;
  } else {
    cls = "lamp ok"; shape = "■"; text = "No alarm";
  }
  if (lamp.className !== cls) lamp.className = cls;
  lamp.querySelector(".shape").textContent = shape;
  setText("lamp-text", text);
}

// a round step for about n ticks over span: 1, 2 or 5 times a power of ten
function niceStep(span, n) {
  const raw = span / Math.max(1, n);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}
// the y range the plot uses: ymax rounded up to a whole number of round steps
function niceMax(ymax) { const st = niceStep(ymax, 4); return Math.ceil(ymax / st - 1e-9) * st; }

function fmtTick(v, step) {
  const dec = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return v.toFixed(dec);
}

function axes(ctx, w, h, pad, xmax, ymax, ylabel) {
  ctx.strokeStyle = "#999"; ctx.lineWidth = 1; ctx.fillStyle = "#333"; ctx.font = "11px sans-serif";
  ctx.beginPath(); ctx.moveTo(pad.l, pad.t); ctx.lineTo(pad.l, h - pad.b); ctx.lineTo(w - pad.r, h - pad.b); ctx.stroke();
  // time ticks: whole days (1, 2, 5, 10, 30 apart), or hours for a run under 2 days
  const days = xmax / DAY;
  let step, unitMs, suffix;
  if (days < 2) { unitMs = 3600000; suffix = "h"; step = [1, 2, 3, 6, 12].find((s) => xmax / (s * unitMs) <= 8) || 12; }
  else { unitMs = DAY; suffix = "d"; step = [1, 2, 5, 10, 30, 60, 90].find((s) => days / s <= 8) || 180; }
  ctx.textBaseline = "alphabetic";
  const ticks = { x: [], y: [], clipped: 0 };
  for (let k = 0; k * step * unitMs <= xmax + 1e-6; k++) {
    const t = k * step * unitMs;
    const x = pad.l + (w - pad.l - pad.r) * t / xmax;
    const label = `${k * step}${suffix}`;
    const tw = ctx.measureText(label).width;
    // centred under its tick, but never past either edge of the canvas
    const lx = Math.min(Math.max(x - tw / 2, 0), w - tw - 1);
    ctx.fillText(label, lx, h - pad.b + 13);
    ticks.x.push(label);
    if (lx < 0 || lx + tw > w) ticks.clipped++;
    ctx.beginPath(); ctx.moveTo(x, h - pad.b); ctx.lineTo(x, h - pad.b + 3); ctx.stroke();
  }
  ctx.fillText(ylabel, pad.l + 4, pad.t + 10);
  const ys = niceStep(ymax, 4);
  for (let v = 0; v <= ymax + ys * 1e-6; v += ys) {
    const y = h - pad.b - (h - pad.t - pad.b) * v / ymax;
    const label = fmtTick(v, ys);
    ctx.fillText(label, Math.max(0, pad.l - 4 - ctx.measureText(label).width), y + 4);
    ticks.y.push(label);
  }
  return ticks;
}

// faults (grey, from the fault to its repair) and the clinic's acts (blue) behind the curves
function shadeSpans(ctx, xf, pad, w, h, tNow) {
  const minW = 2;
  for (const [t0, t1, , src] of app.spans) {
    const x0 = xf(t0), x1 = Math.max(xf(t1 === null ? tNow : t1), x0 + minW);
    ctx.fillStyle = src === "fault" ? "rgba(110, 110, 110, 0.22)" : "rgba(11, 92, 173, 0.14)";
    ctx.fillRect(x0, pad.t, Math.min(x1, w - pad.r) - x0, h - pad.t - pad.b);
  }
}

function polyline(ctx, pts, xf, yf, idx) {
  ctx.beginPath();
  let started = false;
  for (const p of pts) {
    if (p[idx] === null) { started = false; continue; }
    const x = xf(p[0]), y = yf(p[idx]);
    if (!started) { ctx.moveTo(x, y); started = true; } else ctx.lineTo(x, y);
  }
  ctx.stroke();
}

// [t, delivered µg/day, programmed µg/day] over windows of an hour (or longer for long runs):
// the drug in pg (nL x µg/mL) delivered in each window, as a daily rate
function doseRates(points, xmax) {
  const win = Math.max(3600000, Math.round(xmax / 300 / 3600000) * 3600000);
  const out = [];
  let a = points[0];
  for (const p of points) {
    if (!a || p.length < 8) continue;
    if (p[0] - a[0] >= win) {
      out.push([p[0], (p[6] - a[6]) / 1e6 * DAY / (p[0] - a[0]), p[7]]);
      a = p;
    }
  }
  return out;
}

function decimate(points, width) {
  const step = Math.max(1, Math.floor(points.length / (width * 2)));
  if (step === 1) return points;
  const out = [];
  for (let i = 0; i < points.length; i += step) out.push(points[i]);
  out.push(points[points.length - 1]);
  return out;
}

function drawPlots(v) {
  const pts = decimate(app.points, 640);
  const xmax = Math.max(v.end_ms, 1);
  // delivered vs programmed
  {
    const c = $("plot-delivery"), ctx = c.getContext("2d"), w = c.width, h = c.height;
    const pad = { l: 44, r: 10, t: 8, b: 18 };
    ctx.clearRect(0, 0, w, h);
    let ymax = 1e-3;
    for (const p of pts) ymax = Math.max(ymax, p[1] / 1e6, p[2] / 1e6);
    ymax = niceMax(ymax * 1.05);
    app.ticks.delivery = axes(ctx, w, h, pad, xmax, ymax, "mL");
    const xf = (t) => pad.l + (w - pad.l - pad.r) * t / xmax;
    const yf = (ml) => h - pad.b - (h - pad.t - pad.b) * ml / ymax;
    shadeSpans(ctx, xf, pad, w, h, v.t_ms);
    const mlPts = pts.map((p) => [p[0], p[1] / 1e6, p[2] / 1e6]);
    ctx.setLineDash([6, 4]); ctx.strokeStyle = "#555"; ctx.lineWidth = 1.5;
    polyline(ctx, mlPts, xf, yf, 2);
    ctx.setLineDash([]); ctx.strokeStyle = "#0b5cad"; ctx.lineWidth = 2;
    polyline(ctx, mlPts, xf, yf, 1);
    ctx.fillStyle = "#0b5cad"; ctx.fillText("— delivered", w - 170, pad.t + 10);
    ctx.fillStyle = "#555"; ctx.fillText("- - programmed", w - 90, pad.t + 10);
    const last = app.points[app.points.length - 1];
    if (last) setText("cap-delivery", `Cumulative volume: delivered ${mL(last[1])} (solid), programmed ${mL(last[2])} (dashed), at ${fmtTime(last[0])}.`);
  }
  // dose: µg/day of drug delivered (its real strength) vs the programmed daily dose
  {
    const c = $("plot-dose"), ctx = c.getContext("2d"), w = c.width, h = c.height;
    const pad = { l: 44, r: 10, t: 8, b: 18 };
    ctx.clearRect(0, 0, w, h);
    const rates = doseRates(app.points, xmax);
    let ymax = 1;
    for (const r of rates) ymax = Math.max(ymax, r[1], r[2]);
    ymax = niceMax(ymax * 1.08);
    app.ticks.dose = axes(ctx, w, h, pad, xmax, ymax, "µg/day");
    const xf = (t) => pad.l + (w - pad.l - pad.r) * t / xmax;
    const yf = (val) => h - pad.b - (h - pad.t - pad.b) * Math.min(val, ymax) / ymax;
    shadeSpans(ctx, xf, pad, w, h, v.t_ms);
    ctx.setLineDash([6, 4]); ctx.strokeStyle = "#555"; ctx.lineWidth = 1.5;
    polyline(ctx, rates, xf, yf, 2);
    ctx.setLineDash([]); ctx.strokeStyle = "#0b5cad"; ctx.lineWidth = 2;
    polyline(ctx, rates, xf, yf, 1);
    ctx.fillStyle = "#0b5cad"; ctx.fillText("— delivered", w - 170, pad.t + 10);
    ctx.fillStyle = "#555"; ctx.fillText("- - programmed", w - 90, pad.t + 10);
    app.doseRates = rates;
    const last = rates[rates.length - 1];
    if (last) setText("cap-dose", `Drug delivered ${Math.round(last[1])} µg/day (at its real strength, solid) ` +
                      `against the programmed ${last[2]} µg/day (dashed), over the hour to ${fmtTime(last[0])}.`);
  }
  // patient model
  {
    const c = $("plot-patient"), ctx = c.getContext("2d"), w = c.width, h = c.height;
    const pad = { l: 44, r: 10, t: 8, b: 18 };
    ctx.clearRect(0, 0, w, h);
    let ymax = 1;
    for (const p of pts) ymax = Math.max(ymax, p[3], p[5] === null ? 0 : p[5]);
    ymax = niceMax(ymax * 1.08);
    app.ticks.patient = axes(ctx, w, h, pad, xmax, ymax, "ng/mL");
    const xf = (t) => pad.l + (w - pad.l - pad.r) * t / xmax;
    const yf = (val) => h - pad.b - (h - pad.t - pad.b) * Math.min(val, ymax) / ymax;
    shadeSpans(ctx, xf, pad, w, h, v.t_ms);
    ctx.fillStyle = "rgba(40, 140, 60, 0.15)";
    for (let i = 1; i < pts.length; i++) {
      const a = pts[i - 1], b = pts[i];
      if (a[4] === null || b[4] === null) continue;
      ctx.beginPath();
      ctx.moveTo(xf(a[0]), yf(a[5])); ctx.lineTo(xf(b[0]), yf(b[5]));
      ctx.lineTo(xf(b[0]), yf(b[4])); ctx.lineTo(xf(a[0]), yf(a[4])); ctx.closePath(); ctx.fill();
    }
    ctx.strokeStyle = "#2a7a2a"; ctx.setLineDash([2, 3]); ctx.lineWidth = 1;
    polyline(ctx, pts, xf, yf, 4); polyline(ctx, pts, xf, yf, 5);
    ctx.setLineDash([]); ctx.strokeStyle = "#7a1fa2"; ctx.lineWidth = 2;
    polyline(ctx, pts, xf, yf, 3);
    for (const f of v.flags) {
      const x = xf(f.t_ms);
      ctx.strokeStyle = "#a00000"; ctx.setLineDash([4, 2]); ctx.lineWidth = 1.5;
      ctx.beginPath(); ctx.moveTo(x, pad.t); ctx.lineTo(x, h - pad.b); ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = "#a00000";
      ctx.fillText(f.flag === "possible_overdose" ? "▲ overdose" : "▼ withdrawal", Math.min(x + 3, w - 80), pad.t + 22);
    }
    const last = app.points[app.points.length - 1];
    if (last) {
      const band = last[4] === null ? "no dose programmed" : `band ${last[4].toFixed(0)}–${last[5].toFixed(0)} ng/mL`;
      setText("cap-patient", `Patient model (educational): level ${last[3].toFixed(0)} ng/mL, ${band}, at ${fmtTime(last[0])}; ` +
              `${v.flags.length} flag(s).`);
    }
  }
}

// ---------------------------------------------------------------- sound (Web Audio)
function ensureAudio() {
  if (!app.audio && (window.AudioContext || window.webkitAudioContext)) {
    try { app.audio = new (window.AudioContext || window.webkitAudioContext)(); } catch (e) { app.audio = null; }
  }
  if (app.audio && app.audio.state === "suspended") app.audio.resume();
}

function playPattern(pattern) {
  // 2: the three-second two-tone (critical); 1: the one-second single tone
  app.lastSound = pattern;
  const ctx = app.audio;
  if (!ctx || app.muted || ctx.currentTime < app.soundUntil) return;
  const t0 = ctx.currentTime + 0.02;
  const osc = ctx.createOscillator(), gain = ctx.createGain();
  osc.type = "square";
  gain.gain.value = 0.06;
  osc.connect(gain).connect(ctx.destination);
  const len = pattern === 2 ? 3 : 1;
  if (pattern === 2) {
    for (let i = 0; i < 12; i++) osc.frequency.setValueAtTime(i % 2 ? 660 : 880, t0 + i * 0.25);
  } else {
    osc.frequency.setValueAtTime(880, t0);
  }
  osc.start(t0);
  osc.stop(t0 + len);
  app.soundUntil = t0 + len;
}

// ---------------------------------------------------------------- time
function setSpeed(s) {
  if (s > 0) app.lastSpeed = s;
  app.speed = s;
  for (const b of document.querySelectorAll("[data-speed]")) {
    b.setAttribute("aria-pressed", String(Number(b.dataset.speed) === s));
  }
  showStatus();
}

function frame(now) {
  const dt = Math.min(now - (app.lastFrame || now), 250);
  app.lastFrame = now;
  if (app.ready && app.speed > 0 && !app.finished && !app.busy && !app.error) {
    try {
      const st = call("step", Math.max(1, Math.round(dt * app.speed)));
      app.finished = st.finished;
      refresh();
      app.frames++;
      app.framesTotal++;
    } catch (e) { /* shown */ }
    if (app.finished) setSpeed(0);
  }
  if (now - app.fpsT >= 1000) {
    app.fps = app.frames * 1000 / (now - app.fpsT || 1);
    app.frames = 0;
    app.fpsT = now;
    setText("fps", app.speed > 0 ? `${app.fps.toFixed(0)} fps` : "– fps");
  }
  requestAnimationFrame(frame);
}

async function runToEnd() {
  if (!app.ready || app.busy || app.finished) return;
  app.busy = true;
  setSpeed(0);
  showStatus();
  const t0 = performance.now();
  let chunk = 3600000;
  try {
    while (!app.finished) {
      const a = performance.now();
      const st = call("step", chunk);
      const took = performance.now() - a;
      app.finished = st.finished;
      chunk = Math.round(Math.max(600000, Math.min(chunk * Math.min(4, 120 / Math.max(took, 1)), 30 * DAY)));
      refresh();
      await new Promise((r) => setTimeout(r, 0));
    }
  } catch (e) { /* shown */ }
  app.lastRunMs = performance.now() - t0;
  app.busy = false;
  showStatus();
}

async function nextEvent() {
  if (!app.ready || app.busy || app.finished) return;
  app.busy = true;
  setSpeed(0);
  try {
    for (;;) {
      const st = call("next_event", 20000);
      refresh();
      if (!st.more) break;
      await new Promise((r) => setTimeout(r, 0));
    }
  } catch (e) { /* shown */ }
  app.busy = false;
  showStatus();
}

// ---------------------------------------------------------------- actions
function num(id) {
  const raw = $(id).value.trim();
  if (raw === "") return undefined;
  const n = Number(raw);
  return Number.isFinite(n) ? n : raw;
}

function act(name, args) {
  ensureAudio();
  if (!app.ready || app.busy) return null;
  const clean = {};
  for (const [k, v] of Object.entries(args || {})) if (v !== undefined) clean[k] = v;
  let r;
  try { r = call("act", name, JSON.stringify(clean)); } catch (e) { return null; }
  const el = $("act-result");
  el.className = "result " + (r.ok ? "accepted" : "refused");
  el.textContent = `${fmtTime(app.view ? app.view.t_ms : 0)} ${name}: ${r.text}`;
  refresh();
  return r;
}

function wireActions() {
  const on = (id, fn) => $(id).addEventListener("click", fn);
  on("act-patient-bolus", () => act("patient_bolus"));
  on("act-silence", () => act("silence"));
  on("act-acknowledge", () => act("acknowledge", { alarm: $("ack-alarm").value }));
  on("act-suspend", () => act("suspend"));
  on("act-resume", () => act("resume"));
  on("act-alarm-test", () => act("alarm_test"));
  on("act-set-clock", () => act("set_clock", { shift_min: num("clock-shift") }));
  on("act-bolus", () => act("bolus", { dose_ug: num("bolus-ug"), duration_min: num("bolus-min") }));
  const refill = (extra) => act("refill", Object.assign({ volume_ml: num("refill-ml"), concentration_ug_ml: num("refill-conc") }, extra));
  on("act-refill", () => refill({}));
  on("act-refill-wrong", () => refill({ actual_concentration_ug_ml: num("refill-actual") }));
  on("act-refill-pocket", () => refill({ pocket_fill: true }));
  on("act-kink", () => act("kink", { severity_pct: num("kink-pct") }));
  on("act-release", () => act("release"));
  on("act-migrate", () => act("migrate"));
  on("act-revise", () => act("revise_catheter"));
  on("act-stall", () => act("stall", { strokes: num("stall-n") }));
  on("act-jam", () => act("jam"));
  on("act-repair-motor", () => act("repair_motor"));
  on("act-drain", () => act("battery_drop", { to_permille: num("drain-to") }));
  on("act-reset", () => act("reset"));
  on("act-reset-write", () => act("reset_during_write", { nth_write: 1 }));
  for (const b of document.querySelectorAll("[data-speed]")) {
    b.addEventListener("click", () => { ensureAudio(); setSpeed(Number(b.dataset.speed)); });
  }
  on("btn-next", () => { ensureAudio(); nextEvent(); });
  on("btn-end", () => { ensureAudio(); runToEnd(); });
  on("btn-extend", () => {
    if (!app.ready || app.busy) return;
    call("extend", 7);
    app.finished = false;
    app.result = null;
    $("final").hidden = true;
    refresh();
  });
  on("btn-mute", () => {
    app.muted = !app.muted;
    const b = $("btn-mute");
    b.setAttribute("aria-pressed", String(app.muted));
    b.textContent = app.muted ? "Page sound muted" : "Mute page sound";
  });
  $("prog-form").addEventListener("submit", (e) => { e.preventDefault(); sendProgram(); });
  on("p-confirm", confirmProgram);
  on("p-cancel", cancelProgram);
  on("p-load", () => { if (app.view && app.view.pump.program) loadProgramIntoForm(app.view.pump.program); });
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t && (t.closest("input, textarea, select, [contenteditable]") || (e.key === " " && t.closest("button, a, summary")))) return;
    const k = e.key.toLowerCase();
    if (k === " ") { e.preventDefault(); ensureAudio(); setSpeed(app.speed ? 0 : app.lastSpeed); }
    else if (k === "0") setSpeed(0);
    else if (k === "1") { ensureAudio(); setSpeed(1); }
    else if (k === "2") { ensureAudio(); setSpeed(60); }
    else if (k === "3") { ensureAudio(); setSpeed(3600); }
    else if (k === "n") { ensureAudio(); nextEvent(); }
    else if (k === "e") { ensureAudio(); runToEnd(); }
  });
}

// ---------------------------------------------------------------- program editor
function two(n) { return String(n).padStart(2, "0"); }

function loadProgramIntoForm(p) {
  $("p-mode").value = p.mode;
  $("p-conc").value = p.concentration_ug_ml ?? "";
  $("p-daily").value = p.daily_dose_ug ?? "";
  $("p-steps").value = (p.steps || []).map((s) => `${two(Math.floor(s.start_min / 60))}:${two(s.start_min % 60)} ${s.daily_rate_ug}`).join("\n");
  $("p-maxd").value = p.max_daily_ug ?? "";
  $("p-maxh").value = p.max_hourly_ug ?? "";
  $("p-stepup").value = p.max_step_up_pct ?? "";
  $("p-override").checked = !!p.override_step_up;
  const pb = p.patient_bolus;
  $("p-pb").checked = !!pb;
  $("p-pb-dose").value = pb ? pb.dose_ug : "";
  $("p-pb-dur").value = pb ? pb.duration_min : "";
  $("p-pb-lock").value = pb ? pb.lockout_min : "";
  $("p-pb-max").value = pb ? pb.max_per_day : "";
  const known = new Set(["mode", "concentration_ug_ml", "daily_dose_ug", "steps", "max_daily_ug", "max_hourly_ug",
                         "max_step_up_pct", "override_step_up", "patient_bolus"]);
  const extra = {};
  for (const [k, v] of Object.entries(p)) if (!known.has(k)) extra[k] = v;
  $("p-extra").value = Object.keys(extra).length ? JSON.stringify(extra) : "";
}

function buildProgram() {
  const p = { mode: $("p-mode").value };
  const put = (key, id) => { const v = num(id); if (v !== undefined) p[key] = v; };
  put("concentration_ug_ml", "p-conc");
  if (p.mode === "continuous") put("daily_dose_ug", "p-daily");
  if (p.mode === "flex") {
    p.steps = [];
    const lines = $("p-steps").value.split("\n").map((s) => s.trim()).filter(Boolean);
    lines.forEach((line, i) => {
      const m = /^(\d{1,2}):(\d{2})\s+(-?\d+(?:\.\d+)?)$/.exec(line);
      if (!m) throw new Error(`flex step line ${i + 1}: "${line}" is not "HH:MM µg/day"`);
      p.steps.push({ start_min: Number(m[1]) * 60 + Number(m[2]), daily_rate_ug: Number(m[3]) });
    });
  }
  put("max_daily_ug", "p-maxd");
  put("max_hourly_ug", "p-maxh");
  put("max_step_up_pct", "p-stepup");
  if ($("p-override").checked) p.override_step_up = true;
  if ($("p-pb").checked) {
    const pb = {};
    for (const [k, id] of [["dose_ug", "p-pb-dose"], ["duration_min", "p-pb-dur"], ["lockout_min", "p-pb-lock"], ["max_per_day", "p-pb-max"]]) {
      const v = num(id);
      if (v !== undefined) pb[k] = v;
    }
    p.patient_bolus = pb;
  }
  const extra = $("p-extra").value.trim();
  if (extra) {
    let x;
    try { x = JSON.parse(extra); } catch (e) { throw new Error("other fields: not JSON: " + e.message); }
    Object.assign(p, x);
  }
  return p;
}

// the pump's read-back beside what was typed: [label, typed, pump dose, pump volume]
const RB_ROWS = [
  ["mode", ["mode"], "", "mode", "", "same"],
  ["concentration", ["concentration_ug_ml"], "µg/mL", "concentration_ug_ml", "µg/mL", "same"],
  ["daily dose", ["daily_dose_ug"], "µg/day", "daily_nl", "/day", "daily"],
  ["cap in any 24 h", ["max_daily_ug"], "µg", "max_daily_nl", "", "ug"],
  ["cap in any hour", ["max_hourly_ug"], "µg", "max_hourly_nl", "", "ug"],
  ["patient bolus", ["patient_bolus", "dose_ug"], "µg", "patient_bolus_nl", "", "ug"],
  ["  given over", ["patient_bolus", "duration_min"], "min", "patient_bolus_duration_min", "min", "pb"],
  ["  lockout", ["patient_bolus", "lockout_min"], "min", "patient_bolus_lockout_min", "min", "pb"],
  ["  at most per 24 h", ["patient_bolus", "max_per_day"], "", "patient_bolus_max_per_day", "", "pb"],
  ["safe mode rate", ["safe_rate_ug_day"], "µg/day", "safe_rate_nl_day", "/day", "ug"],
  ["low reservoir alarm", ["low_reservoir_ul"], "µL", "low_reservoir_nl", "", "ul"],
  ["step-up override", ["override_step_up"], "", "override_step_up", "", "same"],
];

function numText(x) { return String(Math.round(x * 1000) / 1000); }

function readbackRows(rb, typed) {
  const c = rb.concentration_ug_ml;
  const get = (path) => path.reduce((o, k) => (o && typeof o === "object" && k in o ? o[k] : undefined), typed);
  const cell = (v, unit) => v === undefined ? "–" : typeof v === "boolean" ? (v ? "yes" : "no") : `${v} ${unit}`.trim();
  const rows = [];
  for (const [label, path, tunit, key, unit, kind] of RB_ROWS) {
    if (!(key in rb)) continue;
    const v = rb[key], t = get(path);
    if (kind === "daily") {
      if (rb.mode === "stopped") continue;
      rows.push([label, rb.mode === "flex" ? "(from the steps)" : cell(t, tunit), `${rb.daily_dose_ug} µg/day`, `${v} nL/day`]);
      if (rb.mode === "flex") {
        (rb.steps || []).forEach((st, i) => {
          const ts = (typed.steps || [])[i] || {};
          rows.push([`  step from ${two(Math.floor(st.start_min / 60))}:${two(st.start_min % 60)}`,
                     cell(ts.daily_rate_ug, "µg/day"), `${st.daily_rate_ug} µg/day`, `${st.nl_per_day} nL/day`]);
        });
      }
    } else if (kind === "ug") {
      if (!v && t === undefined) continue;
      rows.push([label, cell(t, tunit), `${numText(v * c / 1e6)} µg${unit}`, `${v} nL${unit}`]);
    } else if (kind === "ul") {
      rows.push([label, cell(t, tunit), `${numText(v / 1000)} µL`, `${v} nL`]);
    } else {
      if (kind === "pb" && !rb.patient_bolus_nl) continue;
      rows.push([label, cell(t, tunit), cell(v, unit), ""]);
    }
  }
  return rows;
}

function showReadback(rb, typed) {
  const tb = $("p-readback").tBodies[0];
  tb.textContent = "";
  for (const r of readbackRows(rb, typed)) {
    const tr = tb.insertRow();
    tr.dataset.field = r[0].trim();
    r.forEach((c, i) => {
      const td = i === 0 ? document.createElement("th") : tr.insertCell();
      if (i === 0) { td.scope = "row"; tr.appendChild(td); }
      td.textContent = c;
    });
  }
  $("p-readback").hidden = false;
}

function pendingButtons(on) {
  $("p-confirm").hidden = !on;
  $("p-cancel").hidden = !on;
  $("p-send").disabled = on;
  if (on) $("p-confirm").focus();
}

function programCall(fn, arg) {
  ensureAudio();
  if (!app.ready || app.busy) return null;
  let r;
  try { r = arg === undefined ? call(fn) : call(fn, arg); } catch (e) { return null; }
  refresh();
  return r;
}

function actResult(name, r) {
  const el = $("act-result");
  el.className = "result " + (r.ok ? "accepted" : "refused");
  el.textContent = `${fmtTime(app.view ? app.view.t_ms : 0)} ${name}: ${r.text}`;
}

// step one: the pump checks the program and reads back its own numbers; nothing changes yet
function sendProgram() {
  const out = $("p-result");
  let prog;
  try { prog = buildProgram(); } catch (e) {
    out.textContent = "The page could not read the form (nothing was sent): " + e.message;
    return;
  }
  const r = programCall("check_program", JSON.stringify({ program: prog }));
  if (!r) return;
  actResult("program", r);
  if (!r.ok) {
    $("p-readback").hidden = true;
    pendingButtons(false);
    out.textContent = "Not accepted. The pump said:\n" + r.text;
    return;
  }
  app.typedProgram = prog;
  showReadback(r.readback, prog);
  out.textContent = "Read back by the pump, not in force yet: compare its numbers (µg and nL) with what you " +
    "typed, then confirm or cancel.";
  pendingButtons(true);
}

// step two: confirm (the pump checks it again and puts it in force) or cancel
function confirmProgram() {
  const r = programCall("confirm_program");
  if (!r) return;
  actResult("confirm", r);
  pendingButtons(false);
  $("p-result").textContent = r.ok ? "Confirmed: the program is in force now." : "Not put in force. The pump said:\n" + r.text;
}

function cancelProgram() {
  const r = programCall("cancel_program");
  if (!r) return;
  actResult("cancel", r);
  pendingButtons(false);
  $("p-readback").hidden = true;
  $("p-result").textContent = "Cancelled: the pump keeps the program in force.";
}

// ---------------------------------------------------------------- start
wireActions();
requestAnimationFrame(frame);
boot().catch(showError);
