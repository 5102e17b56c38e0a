// The page's one socket (docs/protocol.md §5): connect, hello, requests
// answered by `rid`, pushes handed to the app, and reconnection with
// backoff. The server replays nothing by itself: after every `welcome` the
// app syncs from its positions (docs/web.md, "Catching up").

import { call } from "./api.js";

const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 15_000;

export class Socket {
  constructor({ onPush, onState, onWelcome }) {
    this.onPush = onPush;
    this.onState = onState;
    this.onWelcome = onWelcome;
    this.ws = null;
    this.ready = false;
    this.rid = 0;
    this.waiting = new Map();
    this.backoff = MIN_BACKOFF_MS;
    this.timer = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  /// Log out: the server closes normally and tells peers `logout`.
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws && this.ready) this.ws.send(JSON.stringify({ op: "logout" }));
    this.ws?.close();
    this.ws = null;
  }

  async open() {
    clearTimeout(this.timer);
    this.onState(this.backoff === MIN_BACKOFF_MS ? "connecting" : "reconnecting");
    let ticket;
    try {
      ticket = await call("POST", "/v1/connect", { transport: "ws" });
    } catch (e) {
      if (e.status === 401) return; // the session ended: the app shows login
      return this.retry();
    }
    if (this.stopped) return;
    const ws = new WebSocket(address(ticket.address));
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ op: "hello", ticket: ticket.ticket }));
    ws.onmessage = (e) => this.frame(ws, e.data);
    ws.onclose = () => this.closed(ws);
  }

  frame(ws, data) {
    let f;
    try {
      f = JSON.parse(data);
    } catch {
      return;
    }
    if (f.op === "welcome") {
      this.ready = true;
      this.backoff = MIN_BACKOFF_MS;
      this.onState("online");
      this.onWelcome(f);
    } else if (f.op === "ping") {
      ws.send(JSON.stringify({ op: "pong" }));
    } else if (f.op === "reconnect") {
      // The node is leaving: come back after its hint, maybe elsewhere.
      this.backoff = Math.max(f.after_ms || MIN_BACKOFF_MS, MIN_BACKOFF_MS);
    } else if (f.rid !== undefined && this.waiting.has(f.rid)) {
      const w = this.waiting.get(f.rid);
      this.waiting.delete(f.rid);
      if (f.op === "error") w.reject(f);
      else w.resolve(f);
    } else {
      this.onPush(f);
    }
  }

  closed(ws) {
    if (this.ws !== ws) return;
    this.ws = null;
    this.ready = false;
    for (const w of this.waiting.values()) {
      w.reject({ code: "disconnected", message: "the connection was lost" });
    }
    this.waiting.clear();
    if (!this.stopped) this.retry();
  }

  retry() {
    this.onState("reconnecting");
    const wait = this.backoff * (0.75 + Math.random() / 2);
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
    this.timer = setTimeout(() => this.open(), wait);
  }

  /// Sends a request and resolves with its answer (rejects with the error
  /// frame, or `disconnected` when the socket is not open or closes first).
  request(frame) {
    if (!this.ready || !this.ws) {
      return Promise.reject({ code: "disconnected", message: "not connected" });
    }
    const rid = ++this.rid;
    this.ws.send(JSON.stringify({ ...frame, rid }));
    return new Promise((resolve, reject) => this.waiting.set(rid, { resolve, reject }));
  }

  /// A frame that has no answer (ack, typing).
  tell(frame) {
    if (this.ready && this.ws) this.ws.send(JSON.stringify(frame));
  }
}

/// The address `connect` gave, except that a node bound to a loopback or
/// wildcard address is reached the way this page was (its Host), so the
/// socket is same-origin.
function address(given) {
  const u = new URL(given);
  const local = ["127.0.0.1", "0.0.0.0", "localhost", "[::1]", "[::]"];
  if (local.includes(u.hostname) && u.port === location.port) {
    u.host = location.host;
  }
  if (location.protocol === "https:") u.protocol = "wss:";
  return u.toString();
}
