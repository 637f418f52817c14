/* The live dashboard of `lab up`: one point a second over Server-Sent Events
   (/live/stream), drawn with uPlot; fault events as markers; a topology diagram.
   window.labState holds what is drawn (tests read it, or #lab-state in the DOM). */
"use strict";

const STATE_COLOURS = {
  up: "#2e9e4f", slow: "#e0a100", failing: "#e0572b", down: "#8b96a5", open: "#8e44ad",
};
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
  "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];
const CLASS_COLOURS = { "2xx": "#2e9e4f", "3xx": "#1f77b4", "4xx": "#e0a100", "5xx": "#d62728" };

/* Each chart: a title, a unit, and how one point becomes {series name: value}. */
const CHARTS = [
  { id: "client-rps", title: "client (Locust): requests/s ok / failed", unit: "req/s",
    values: (p) => ({ ...(p.client || {}) }), colours: { ok: "#2e9e4f", failed: "#d62728" },
    onlyWith: "client" },
  { id: "nginx-rps", title: "nginx: requests/s by status class", unit: "req/s",
    values: (p) => ({ "2xx": 0, "5xx": 0, ...p.nginx }), colours: CLASS_COLOURS,
    zero: true, nginxLogs: true },
  { id: "latency", title: "nginx: latency p50 / p99 (request_time)", unit: "ms",
    values: (p) => ({ p50: p.p50_ms, p99: p.p99_ms }), colours: { p50: "#1f77b4", p99: "#d62728" },
    nginxLogs: true },
  { id: "arrivals", title: "per replica: arrivals/s", unit: "req/s",
    values: (p) => mapReplicas(p, "arrivals") },
  { id: "in-flight", title: "per replica: requests in flight", unit: "requests",
    values: (p) => mapReplicas(p, "in_flight") },
  { id: "errors", title: "nginx error log: upstream errors/s by kind", unit: "errors/s",
    values: (p) => ({ ...(p.errors || {}) }), always: true, zero: true, nginxLogs: true },
  { id: "gateway", title: "gateway: attempts/s and retries/s per downstream", unit: "per s",
    values: (p) => gatewayValues(p), onlyWith: "gateways" },
  { id: "bulkhead", title: "gateway: bulkhead occupancy per downstream", unit: "calls",
    values: (p) => gatewayBulkhead(p), onlyWith: "gateways" },
];

function mapReplicas(point, key) {
  const out = {};
  for (const [name, data] of Object.entries(point.replicas || {})) out[name] = data[key];
  return out;
}

function gatewayValues(point) {
  const out = {};
  for (const [gw, downstreams] of Object.entries(point.gateways || {})) {
    for (const [name, d] of Object.entries(downstreams)) {
      out[`${gw}→${name} attempts`] = d.attempts;
      out[`${gw}→${name} retries`] = d.retries;
    }
  }
  return out;
}

function gatewayBulkhead(point) {
  const out = {};
  for (const [gw, downstreams] of Object.entries(point.gateways || {})) {
    for (const [name, d] of Object.entries(downstreams)) {
      if (d.bulkhead !== null && d.bulkhead !== undefined) out[`${gw}→${name}`] = d.bulkhead;
    }
  }
  return out;
}

const state = {
  title: "", graph: null, points: [], events: [], nodes: {}, charts: {}, nginxLogs: true,
};
window.labState = { points: 0, requests: 0, charts: {}, events: [], nodes: {}, connected: false };

/* --- charts --------------------------------------------------------------------- */

function markersPlugin() {
  return {
    hooks: {
      draw: [(u) => {
        const { ctx, bbox } = u;
        ctx.save();
        ctx.font = `${11 * devicePixelRatio}px DejaVu Sans, sans-serif`;
        ctx.textBaseline = "top";
        let row = 0;
        for (const event of state.events) {
          const x = u.valToPos(event.t, "x", true);
          if (x < bbox.left || x > bbox.left + bbox.width) continue;
          ctx.strokeStyle = "#8e44ad";
          ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
          ctx.lineWidth = devicePixelRatio;
          ctx.beginPath();
          ctx.moveTo(x, bbox.top);
          ctx.lineTo(x, bbox.top + bbox.height);
          ctx.stroke();
          ctx.fillStyle = "#8e44ad";
          const textWidth = ctx.measureText(event.label).width;
          const right = x + 3 * devicePixelRatio + textWidth > bbox.left + bbox.width;
          ctx.textAlign = right ? "right" : "left";
          const tx = right ? x - 3 * devicePixelRatio : x + 3 * devicePixelRatio;
          ctx.fillText(event.label, tx, bbox.top + (row % 3) * 13 * devicePixelRatio);
          row += 1;
        }
        ctx.restore();
      }],
    },
  };
}

function ensureChart(def, names) {
  let chart = state.charts[def.id];
  const key = names.join("\u0000");
  if (chart && chart.key === key) return chart;
  if (chart) chart.plot.destroy();
  let box = document.getElementById(`chart-${def.id}`);
  if (!box) {
    box = document.createElement("div");
    box.className = "panel chart";
    box.id = `chart-${def.id}`;
    box.innerHTML = `<h2>${def.title} <small>(${def.unit})</small></h2><div class="plot"></div>`;
    document.getElementById("charts").appendChild(box);
  }
  const width = Math.max(300, box.clientWidth - 24);
  const opts = {
    width, height: 200,
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [{}, { size: 50, label: def.unit, labelSize: 18 }],
    series: [{}, ...names.map((name, i) => ({
      label: name,
      stroke: (def.colours && def.colours[name]) || PALETTE[i % PALETTE.length],
      width: 1.5,
      spanGaps: false,
      points: { show: false },
    }))],
    plugins: [markersPlugin()],
  };
  const plot = new uPlot(opts, [[], ...names.map(() => [])], box.querySelector(".plot"));
  chart = { plot, key, names };
  state.charts[def.id] = chart;
  return chart;
}

function redraw() {
  const xs = state.points.map((p) => p.t);
  const summary = {};
  for (const def of CHARTS) {
    if (def.onlyWith && !state.points.some((p) => Object.keys(p[def.onlyWith] || {}).length)) continue;
    if (def.nginxLogs && !state.nginxLogs) continue;
    const rows = state.points.map(def.values);
    const names = [...new Set(rows.flatMap((r) => Object.keys(r)))].sort();
    if (!names.length && !def.always) continue;
    const chart = ensureChart(def, names.length ? names : ["no errors yet"]);
    const missing = def.zero ? 0 : null;  // a count absent from a second is 0 there
    const data = [xs, ...chart.names.map((n) => rows.map((r) => (r[n] === undefined ? missing : r[n])))];
    chart.plot.setData(data);
    summary[def.id] = {
      series: Object.fromEntries(chart.names.map((n, i) => [n, data[i + 1].filter((v) => v !== null).length])),
    };
  }
  renderEvents();
  renderGraph();
  const last = state.points[state.points.length - 1];
  if (last) {
    const rps = Object.values(last.nginx || {}).reduce((a, b) => a + b, 0);
    document.getElementById("summary").textContent =
      `${state.points.length} s watched · nginx ${rps.toFixed(1)} req/s · p99 ${last.p99_ms ?? "–"} ms`;
  }
  Object.assign(window.labState, {
    points: state.points.length,
    requests: state.points.reduce((sum, p) => sum + (p.requests || 0), 0),
    charts: summary,
    events: state.events.map((e) => e.label),
    nodes: state.nodes,
  });
  document.getElementById("lab-state").textContent = JSON.stringify(window.labState);
}

/* --- events and diagram --------------------------------------------------------- */

function renderEvents() {
  const list = document.getElementById("events");
  if (!state.events.length) return;
  list.innerHTML = "";
  for (const event of state.events) {
    const item = document.createElement("li");
    const when = new Date(event.t * 1000).toLocaleTimeString([], { hour12: false });
    item.innerHTML = `<time>${when}</time>`;
    item.appendChild(document.createTextNode(event.label));
    list.appendChild(item);
  }
}

function renderGraph() {
  const graph = state.graph;
  if (!graph) return;
  const svg = document.getElementById("topology");
  const depth = { client: 0 };
  const queue = ["client"];
  while (queue.length) {
    const id = queue.shift();
    for (const [a, b] of graph.edges) {
      if (a === id && depth[b] === undefined) { depth[b] = depth[a] + 1; queue.push(b); }
    }
  }
  const maxDepth = Math.max(...Object.values(depth));
  const columns = {};
  for (const node of graph.nodes) {
    const d = depth[node.id] ?? maxDepth + 1;
    (columns[d] = columns[d] || []).push(node);
  }
  const width = svg.clientWidth || 800;
  const tallest = Math.max(...Object.values(columns).map((nodes) => nodes.length));
  const height = Math.max(110, tallest * 48 + 20);
  svg.style.height = `${height}px`;
  const count = Object.keys(columns).length;
  const pos = {};
  const boxW = Math.min(150, width / count - 30);
  for (const [d, nodes] of Object.entries(columns)) {
    nodes.forEach((node, i) => {
      const x = 10 + (Number(d) * (width - boxW - 20)) / Math.max(1, count - 1);
      const y = ((i + 1) * height) / (nodes.length + 1);
      pos[node.id] = { x, y };
    });
  }
  const h = 34;
  let out = "";
  for (const [a, b] of graph.edges) {
    if (!pos[a] || !pos[b]) continue;
    out += `<line x1="${pos[a].x + boxW}" y1="${pos[a].y}" x2="${pos[b].x}" y2="${pos[b].y}" stroke="#aab3bf" stroke-width="1.5" marker-end="url(#arrow)"/>`;
  }
  for (const node of graph.nodes) {
    const p = pos[node.id];
    const st = state.nodes[node.id] || "unknown";
    const colour = STATE_COLOURS[st] || "#c3c9d1";
    out += `<g data-node="${node.id}" data-state="${st}">` +
      `<rect x="${p.x}" y="${p.y - h / 2}" width="${boxW}" height="${h}" rx="5" fill="#fff" stroke="${colour}" stroke-width="2.5"/>` +
      `<rect x="${p.x}" y="${p.y - h / 2}" width="6" height="${h}" rx="2" fill="${colour}"/>` +
      `<text x="${p.x + 12}" y="${p.y - 3}">${escapeHtml(node.label)}</text>` +
      `<text class="state" x="${p.x + 12}" y="${p.y + 12}">${st === "open" ? "breaker open" : st}</text></g>`;
  }
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.innerHTML = `<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#aab3bf"/></marker></defs>${out}`;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

function renderLegend() {
  document.getElementById("legend").innerHTML = Object.entries(STATE_COLOURS)
    .map(([name, colour]) => `<span><i style="background:${colour}"></i>${name === "open" ? "breaker open" : name}</span>`)
    .join("");
}

/* --- the stream ----------------------------------------------------------------- */

function connect() {
  const badge = document.getElementById("connection");
  const source = new EventSource("/live/stream");
  source.addEventListener("init", (message) => {
    const init = JSON.parse(message.data);
    state.title = init.title;
    state.graph = init.graph;
    state.points = init.points;
    state.events = init.events;
    state.nginxLogs = init.nginx_logs;
    const last = init.points[init.points.length - 1];
    state.nodes = last ? last.nodes : {};
    document.getElementById("title").textContent = `${init.title} — live`;
    document.title = `${init.title} — lab live`;
    document.getElementById("note").textContent = init.nginx_logs ? "" :
      "nginx's logs are inside its container on this topology: the nginx charts stay empty " +
      "(docker compose logs, or the results folder after `lab down`).";
    badge.textContent = "live";
    badge.className = "badge live";
    window.labState.connected = true;
    redraw();
  });
  source.addEventListener("tick", (message) => {
    const tick = JSON.parse(message.data);
    state.points.push(tick.point);
    if (state.points.length > 600) state.points.shift();
    state.events = tick.events;
    state.nodes = tick.point.nodes;
    redraw();
  });
  source.onerror = () => {
    badge.textContent = "disconnected (is it still up? lab status)";
    badge.className = "badge lost";
    window.labState.connected = false;
  };
}

renderLegend();
connect();
