// The operator console (docs/web.md, "Operator console"): served on the
// internal listener, it calls the internal API with the service key the
// operator types (kept for this tab only) and reads this node's metrics.

const KEY = "magpie.console.key";
const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);

let key = sessionStorage.getItem(KEY) || "";
let timer = null;
let last = null; // the previous poll's counters, for rates
let lastByNode = new Map(); // each node's counters at the last survey

class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
  }
}

async function call(method, path, body) {
  const headers = { authorization: `Bearer ${key}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) {
    let err = {};
    try {
      err = JSON.parse(text).error || {};
    } catch {
      /* not JSON */
    }
    throw new ApiError(res.status, err.code, err.message);
  }
  const type = res.headers.get("content-type") || "";
  return type.includes("json") ? JSON.parse(text) : text;
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function row(...cells) {
  const tr = document.createElement("tr");
  tr.append(...cells.map((c) => (c instanceof Node ? c : cell(String(c)))));
  return tr;
}

/// Prometheus text: one {name, labels, value} per sample.
function samples(text) {
  const out = [];
  for (const line of text.split("\n")) {
    const m = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const [, k, v] of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

const sum = (all, name, pred = () => true) =>
  all.filter((s) => s.name === name && pred(s.labels)).reduce((a, s) => a + s.value, 0);

/// A quantile of a histogram (all label sets together), from its
/// cumulative buckets: the upper bound of the bucket it falls in.
function quantile(all, name, q) {
  const buckets = new Map();
  for (const s of all.filter((s) => s.name === `${name}_bucket`)) {
    buckets.set(s.labels.le, (buckets.get(s.labels.le) || 0) + s.value);
  }
  const total = buckets.get("+Inf") || 0;
  if (!total) return null;
  const bounds = [...buckets.keys()].filter((b) => b !== "+Inf").map(Number).sort((a, b) => a - b);
  for (const b of bounds) {
    const n = [...buckets.entries()].find(([le]) => Number(le) === b)[1];
    if (n >= q * total) return b;
  }
  return Infinity;
}

const ms = (secs) => (secs === null ? "—" : secs === Infinity ? "> max" : `≤ ${Math.round(secs * 1000)} ms`);

async function poll() {
  try {
    const [nodes, metrics] = await Promise.all([call("GET", "/internal/v1/nodes"), call("GET", "/internal/v1/metrics")]);
    $("here").textContent = `node ${nodes.here}`;
    const now = Date.now();
    $("nodes").replaceChildren(
      ...nodes.nodes.map((n) =>
        row(
          n.node + (n.node === nodes.here ? " (this one)" : "") + (n.canary ? " · canary" : ""),
          n.roles.join(", "),
          n.version,
          n.load,
          n.draining ? "draining" : "serving",
          `${Math.max(0, Math.round((now - n.seen_at) / 1000))} s ago`,
          drainButton(n),
        ),
      ),
    );
    const all = samples(metrics);
    const accepted = sum(all, "magpie_messages_accepted_total");
    const rate = last ? ((accepted - last.accepted) * 1000) / Math.max(1, now - last.at) : 0;
    last = { accepted, at: now };
    const stats = [
      ["WebSocket connections", sum(all, "magpie_connections", (l) => l.transport === "ws")],
      ["TCP connections", sum(all, "magpie_connections", (l) => l.transport === "tcp")],
      ["Messages accepted / s", rate.toFixed(1)],
      ["Messages accepted (since start)", accepted],
      ["Delivery latency p50", ms(quantile(all, "magpie_delivery_latency_seconds", 0.5))],
      ["Delivery latency p99", ms(quantile(all, "magpie_delivery_latency_seconds", 0.99))],
      ["Ordering-chain gap alarms", sum(all, "magpie_chain_gaps_total")],
      ["Dead letters", sum(all, "magpie_dead_letters_total")],
      ["Bans made", sum(all, "magpie_bans_total")],
    ];
    $("stats").replaceChildren(
      ...stats.flatMap(([k, v]) => {
        const dt = document.createElement("dt");
        dt.textContent = k;
        const dd = document.createElement("dd");
        dd.textContent = String(v);
        return [dt, dd];
      }),
    );
    const lag = new Map();
    for (const s of all.filter((s) => s.name === "magpie_consumer_lag_events")) {
      lag.set(s.labels.group, (lag.get(s.labels.group) || 0) + s.value);
    }
    $("lag").replaceChildren(...[...lag.entries()].sort().map(([g, n]) => row(g, n)));
    await cluster(now);
  } catch (e) {
    if (e.status === 401) return logout();
  }
}

/// Every node's figures and alarms (`GET /internal/v1/cluster`, gathered
/// over the relay): one row per node, and the alarms of all, newest first.
async function cluster(now) {
  const r = await call("GET", "/internal/v1/cluster");
  const rates = new Map();
  $("cluster").replaceChildren(
    ...r.nodes.map((n) => {
      const all = samples(n.metrics);
      const accepted = sum(all, "magpie_messages_accepted_total");
      const before = lastByNode.get(n.node);
      rates.set(n.node, { accepted, at: now });
      const rate = before ? ((accepted - before.accepted) * 1000) / Math.max(1, now - before.at) : 0;
      return row(
        n.node + (n.draining ? " · draining" : ""),
        sum(all, "magpie_connections"),
        rate.toFixed(1),
        ms(quantile(all, "magpie_delivery_latency_seconds", 0.99)),
        sum(all, "magpie_consumer_lag_events"),
        n.alarms.length,
      );
    }),
  );
  lastByNode = rates;
  $("cluster-missing").textContent = r.missing.length ? `No answer from ${r.missing.join(", ")}` : "";
  const alarms = r.nodes.flatMap((n) => n.alarms.map((a) => ({ ...a, node: n.node }))).sort((a, b) => b.at - a.at);
  $("alarms-empty").hidden = alarms.length > 0;
  $("alarms").replaceChildren(...alarms.map((a) => row(new Date(a.at).toLocaleString(), a.node, a.kind.replace("_", " "), a.detail)));
}

/// A node's drain button: any node is drained through this one (the
/// order travels over the relay, docs/protocol.md §3.13).
function drainButton(n) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "secondary";
  b.textContent = n.draining ? "End the drain" : "Drain";
  b.setAttribute("aria-label", `${n.draining ? "End the drain of" : "Drain"} ${n.node}`);
  b.setAttribute("aria-describedby", "drain-help");
  b.addEventListener("click", () => drain(n.node, !n.draining));
  const td = document.createElement("td");
  td.append(b);
  return td;
}

async function drain(node, on) {
  $("drain-status").textContent = on ? `Draining ${node}…` : `Ending the drain of ${node}…`;
  try {
    const r = await call("PUT", "/internal/v1/drain", { node, draining: on });
    $("drain-status").textContent = r.draining
      ? `${r.node} drains: ${r.closed} connection${r.closed === 1 ? "" : "s"} told to reconnect elsewhere`
      : `${r.node} serves: new connections may go there again`;
    poll();
  } catch (e) {
    $("drain-status").textContent = e.message;
  }
}

async function bans() {
  const list = await call("GET", "/internal/v1/bans");
  $("bans").replaceChildren(
    ...list.map((d) => {
      const lift = document.createElement("button");
      lift.type = "button";
      lift.className = "secondary";
      lift.textContent = "Lift";
      lift.setAttribute("aria-label", `Lift the ban of ${d.value}`);
      lift.addEventListener("click", async () => {
        await call("DELETE", `/internal/v1/bans?id=${encodeURIComponent(d.id)}`).catch((e) => ($("ban-error").textContent = e.message));
        bans();
      });
      const td = document.createElement("td");
      td.append(lift);
      return row(`${d.scope} ${d.value}`, d.reason, d.origin, new Date(d.until_ms).toLocaleString(), td);
    }),
  );
}

async function trace(id) {
  $("trace-status").textContent = "Asking every node…";
  $("hops").replaceChildren();
  try {
    const r = await call("GET", `/internal/v1/trace/${id}`);
    const hops = [...r.hops].sort((a, b) => a.at_us - b.at_us);
    $("trace-status").textContent = `${hops.length} hops${r.conv ? ` in ${r.conv} #${r.seq}` : ""} from ${r.nodes.join(", ")}${r.missing?.length ? `; no answer from ${r.missing.join(", ")}` : ""}`;
    $("hops").replaceChildren(
      ...hops.map((h) =>
        row(h.hop, h.node, new Date(h.at_us / 1000).toISOString().slice(11, 23), [h.user && `user ${h.user}`, h.device, h.transport].filter(Boolean).join(" · ")),
      ),
    );
  } catch (e) {
    $("trace-status").textContent = e.message;
  }
}

function show() {
  $("login").hidden = true;
  $("console").hidden = false;
  poll();
  bans().catch(() => {});
  call("GET", "/internal/v1/log").then((l) => ($("log-filter").value = l.filter)).catch(() => {});
  timer = setInterval(poll, POLL_MS);
}

function logout() {
  clearInterval(timer);
  key = "";
  sessionStorage.removeItem(KEY);
  $("console").hidden = true;
  $("login").hidden = false;
}

function wire() {
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    key = $("key").value;
    try {
      await call("GET", "/internal/v1/nodes");
      sessionStorage.setItem(KEY, key);
      $("login-error").textContent = "";
      show();
    } catch (err) {
      $("login-error").textContent = err.status === 401 ? "Wrong key" : err.message;
    }
  });
  $("logout").addEventListener("click", logout);
  $("ban-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("ban-error").textContent = "";
    try {
      await call("POST", "/internal/v1/bans", {
        scope: $("ban-scope").value,
        value: $("ban-value").value.trim(),
        secs: Number($("ban-secs").value),
        reason: $("ban-reason").value.trim(),
      });
      $("ban-value").value = "";
      await bans();
    } catch (err) {
      $("ban-error").textContent = err.message;
    }
  });
  $("trace-form").addEventListener("submit", (e) => {
    e.preventDefault();
    trace($("trace-id").value.trim());
  });
  $("log-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const r = await call("PUT", "/internal/v1/log", { filter: $("log-filter").value.trim() });
      $("log-status").textContent = `Logging ${r.filter}`;
    } catch (err) {
      $("log-status").textContent = err.message;
    }
  });
}

wire();
if (key) call("GET", "/internal/v1/nodes").then(show, logout);
else $("login").hidden = false;
