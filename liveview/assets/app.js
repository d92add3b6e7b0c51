// Live view: polls /api/state, shows the latest frame, its exits and charts,
// and sends limit changes through /api/command/NAME.
"use strict";

const $ = (id) => document.getElementById(id);
let lastSeq = -1;

function fmt(x, digits) {
  return x === undefined || x === null ? "—" : Number(x).toFixed(digits);
}

function drawChart(canvas, points, pick) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const pts = points.filter((p) => pick(p) !== undefined && pick(p) !== null);
  if (pts.length < 2) {
    ctx.fillStyle = "#777";
    ctx.font = "12px sans-serif";
    ctx.fillText("no sensor reading", 8, h / 2);
    return;
  }
  const t0 = Date.parse(pts[0].t), t1 = Date.parse(pts[pts.length - 1].t);
  let lo = Math.min(...pts.map(pick)), hi = Math.max(...pts.map(pick));
  if (hi === lo) { hi += 1; lo -= 1; }
  ctx.strokeStyle = "#6cf";
  ctx.beginPath();
  pts.forEach((p, i) => {
    const x = ((Date.parse(p.t) - t0) / Math.max(1, t1 - t0)) * (w - 4) + 2;
    const y = h - 14 - ((pick(p) - lo) / (hi - lo)) * (h - 20);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
  ctx.fillStyle = "#999";
  ctx.font = "10px sans-serif";
  ctx.fillText(hi.toFixed(2), 2, 10);
  ctx.fillText(lo.toFixed(2), 2, h - 2);
}

function render(s) {
  const c = s.counters;
  $("counters").textContent = `processed ${c.processed} · failed ${c.failed} · dropped ${c.dropped}`;
  if (s.controls) $("controls").hidden = false;
  if (s.limits) $("limits-now").textContent = "in force: " + JSON.stringify(s.limits);
  drawChart($("chart-power"), s.history, (p) => p.power_w);
  drawChart($("chart-temp"), s.history, (p) => p.temp_c);
  drawChart($("chart-energy"), s.history, (p) => p.energy_mj);
  drawChart($("chart-exit"), s.history, (p) => p.exit);
  const f = s.frame;
  if (!f || s.seq === lastSeq) return;
  lastSeq = s.seq;
  $("source").textContent = f.source;
  $("frame-id").textContent = f.id;
  $("halt").textContent = `exit ${f.halt_exit} (${f.halt})`;
  $("energy").textContent = `${fmt(f.energy_mj, 1)} mJ (${f.energy_source || "no meter"})`;
  $("error").textContent = f.error || "";
  $("frame").src = `/api/frame.png?seq=${s.seq}`;
  const exits = $("exits");
  exits.replaceChildren(...(f.exits || []).map((e) => {
    const div = document.createElement("div");
    div.className = "exit";
    const img = document.createElement("img");
    img.src = `/api/exit/${e.exit}.png?seq=${s.seq}`;
    img.alt = `exit ${e.exit}`;
    const cap = document.createElement("div");
    // One exit record (telemetry.Exit): ms is the stage's own time, ran how
    // it ran, frozen the share it skipped, gmacs the frame's total so far.
    cap.textContent = `exit ${e.exit}: ${e.ran || "?"} on ${e.provider || "?"}, ${fmt(e.ms, 1)} ms, ` +
      `${fmt(100 * e.frozen, 0)}% skipped, ${fmt(e.gmacs, 3)} GMACs so far`;
    div.append(img, cap);
    return div;
  }));
}

async function poll() {
  try {
    const r = await fetch("/api/state", { cache: "no-store" });
    if (r.ok) render(await r.json());
  } catch (e) {
    $("error").textContent = "live view unreachable: " + e;
  }
  setTimeout(poll, 500);
}

$("limits").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const acks = [];
  for (const input of ev.target.querySelectorAll("input")) {
    if (input.value === "") continue;
    const args = {};
    args[input.dataset.arg] = Number(input.value);
    const now = new Date();
    const body = JSON.stringify({
      v: 1, cmd_id: `web-${now.getTime()}-${input.dataset.arg}`, name: input.name,
      issued_at: now.toISOString(), expires_at: new Date(now.getTime() + 60000).toISOString(), args,
    });
    const r = await fetch(`/api/command/${input.name}`, {
      method: "POST", body, headers: { "Content-Type": "application/json" },
    });
    acks.push(`${input.name}: ${await r.text()}`);
    input.value = "";
  }
  $("ack").textContent = acks.join("\n");
});

// Record each loaded frame's size, so a test (or a person) can tell a real
// image arrived.
$("frame").addEventListener("load", (ev) => {
  ev.target.dataset.loaded = `${ev.target.naturalWidth}x${ev.target.naturalHeight}`;
});

poll();
