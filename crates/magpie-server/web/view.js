// Drawing: the conversation list and the open conversation, from the
// state app.js keeps. Nothing here talks to the server.

import { isEvent, mentionsMe } from "./state.js";

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c !== null && c !== undefined) e.append(c);
  }
  return e;
}

export function time(ms) {
  const d = new Date(ms);
  const today = new Date().toDateString() === d.toDateString();
  return today
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleDateString([], { month: "short", day: "numeric" });
}

export function showBanner(state) {
  const b = $("banner");
  b.hidden = state === "online";
  b.textContent = state === "reconnecting" ? "Reconnecting…" : "Connecting…";
}

export function showTotal(total) {
  const t = $("total-unread");
  t.hidden = total === 0;
  t.textContent = String(total);
  t.setAttribute("aria-label", `${total} unread`);
  document.title = total ? `(${total}) Magpie` : "Magpie";
}

/// The list, newest conversation first; `pick(conv)` opens one.
export function drawList(S, pick) {
  const ul = $("conv-list");
  const items = [...S.convs.values()].sort((a, b) => lastAt(b) - lastAt(a));
  ul.replaceChildren(
    ...items.map((c) => {
      const last = c.msgs.get(c.hi);
      const preview = last ? `${last.from === S.me ? "You: " : ""}${summary(last)}` : "";
      const badge = c.unread
        ? el(
            "span",
            {
              class: c.muted ? "badge muted" : "badge",
              "aria-label": `${c.unread} unread${c.mentions ? `, ${c.mentions} mentioning you` : ""}${c.muted ? ", muted" : ""}`,
            },
            c.mentions ? `@${c.unread}` : String(c.unread),
          )
        : null;
      const marks = [c.muted ? "muted" : "", c.peer && S.blocked.has(c.peer) ? "blocked" : ""].filter(Boolean);
      const btn = el(
        "button",
        {
          type: "button",
          class: "conv",
          "data-conv": c.id,
          "aria-current": S.open === c.id ? "true" : null,
          onclick: () => pick(c.id),
        },
        el("span", { class: "conv-title" }, S.title(c), marks.length ? el("span", { class: "mark" }, ` · ${marks.join(", ")}`) : null),
        badge,
        el("span", { class: "conv-preview" }, preview),
        last ? el("time", { datetime: new Date(last.sent_at).toISOString() }, time(last.sent_at)) : null,
      );
      return el("li", {}, btn);
    }),
  );
}

function summary(m) {
  if (m.meta?.recall_of || m.meta?.recalled) return "(recalled a message)";
  if (m.meta?.edit_of) return `(edited) ${m.body}`;
  return m.body;
}

function lastAt(c) {
  const last = c.msgs.get(c.hi);
  return last ? last.sent_at : c.created || 0;
}

/// The state shown beside one of the user's own messages.
function ownState(c, m) {
  if (c.group) {
    // Receipts name the sender's newest message read (docs/protocol.md
    // §4.4); who read a later message read this one too (read positions),
    // so it shows the count of the newest one read (a member who joined
    // between the two would be counted wrongly here; the list on click is
    // exact). The count includes the sender, who has read their own
    // message: others are one fewer.
    let read = 1;
    for (const [seq, n] of c.readBy) if (seq >= m.seq) read = Math.max(read, n);
    return read > 1 ? `Read by ${read - 1}` : "Sent";
  }
  if (m.seq <= c.peer_read) return "Read";
  return m.seq <= c.peer_delivered ? "Delivered" : "Sent";
}

const EDIT_WINDOW_MS = 24 * 3600 * 1000; // messages.edit_window_secs
const RECALL_WINDOW_MS = 120 * 1000; // messages.recall_window_secs

/// One message: sender, time, the message it replies to, its text (or the
/// recalled placeholder), its state if it is one's own, and its actions.
function message(S, c, m, { readBy, act }) {
  const mine = m.from === S.me;
  const state = mine ? ownState(c, m) : null;
  const recalled = Boolean(m.meta?.recalled);
  const found = S.found?.conv === c.id && S.found.seq === m.seq;
  const cls = ["msg", mine ? "mine" : m.from === 0 ? "system" : "", mentionsMe(m) ? "mention" : "", found ? "found" : ""];
  let quote = null;
  if (m.meta?.reply_to) {
    const t = c.msgs.get(m.meta.reply_to);
    const text = t ? `${t.from === S.me ? "You" : S.name(t.from)}: ${t.meta?.recalled ? "(recalled)" : t.body}` : `message #${m.meta.reply_to}`;
    quote = el("p", { class: "quote" }, `Reply to ${text}`);
  }
  const age = Date.now() - m.sent_at;
  const actions = [];
  if (!recalled && m.from !== 0) {
    actions.push(el("button", { type: "button", onclick: () => act("reply", c, m) }, "Reply"));
    if (mine && age < EDIT_WINDOW_MS) actions.push(el("button", { type: "button", onclick: () => act("edit", c, m) }, "Edit"));
    if (mine && age < RECALL_WINDOW_MS) actions.push(el("button", { type: "button", onclick: () => act("recall", c, m) }, "Recall"));
  }
  return el(
    "li",
    { class: cls.filter(Boolean).join(" "), "data-seq": String(m.seq), "data-cmid": mine ? m.cmid : null },
    el("span", { class: "who" }, mine ? "You" : S.name(m.from)),
    el("time", { datetime: new Date(m.sent_at).toISOString() }, time(m.sent_at)),
    m.meta?.edited_at && !recalled ? el("span", { class: "edited" }, " (edited)") : null,
    quote,
    recalled ? el("p", { class: "body recalled" }, "This message was recalled") : el("p", { class: "body" }, m.body),
    state && c.group && state !== "Sent"
      ? el("button", { type: "button", class: "state link", onclick: () => readBy(c, m.seq) }, state)
      : state
        ? el("span", { class: "state" }, state)
        : null,
    actions.length ? el("span", { class: "actions" }, ...actions) : null,
  );
}

/// Redraws the open conversation. Keeps the reader where they were: at the
/// bottom if they were there, else at the same message (older pages added
/// above shift the content by their height, which is given back: `older`).
export function drawConversation(S, c, handlers, older = false) {
  const { retry, discard } = handlers;
  const ol = $("messages");
  const atBottom = ol.scrollHeight - ol.scrollTop - ol.clientHeight < 40;
  const before = ol.scrollHeight;
  const top = ol.scrollTop;
  const rows = [];
  if (c.lo > 1 && c.more_older) rows.push(el("li", { class: "older" }, "Loading older messages…"));
  else if (c.hi > 0) rows.push(el("li", { class: "older", "data-first": "" }, "Start of the conversation"));
  for (let s = c.lo; s <= c.hi; s++) {
    const m = c.msgs.get(s);
    if (!m || isEvent(m)) continue; // an edit or recall shows on its message
    rows.push(message(S, c, m, handlers));
  }
  for (const p of c.pending) {
    if (p.silent) continue; // an edit or recall in flight
    rows.push(
      el(
        "li",
        { class: `msg mine ${p.state}`, "data-cmid": p.cmid },
        el("span", { class: "who" }, "You"),
        el("p", { class: "body" }, p.body),
        el("span", { class: "state", role: p.state === "failed" ? "alert" : null },
          p.state === "failed" ? `Not sent${p.error ? `: ${p.error}` : ""}` : "Sending…"),
        p.state === "failed" ? el("button", { type: "button", class: "retry", onclick: () => retry(c, p) }, "Retry") : null,
        p.state === "failed" ? el("button", { type: "button", class: "discard", onclick: () => discard(c, p) }, "Delete") : null,
      ),
    );
  }
  ol.replaceChildren(...rows);
  if (atBottom) ol.scrollTop = ol.scrollHeight;
  else ol.scrollTop = older ? top + (ol.scrollHeight - before) : top;
}

export function drawHeader(S, c) {
  $("conv-title").textContent = c ? S.title(c) : "Pick a conversation";
  $("composer").hidden = !c;
  $("open-members").hidden = !c?.group;
  const p = $("presence");
  p.textContent = c && !c.group && S.online.has(c.peer) ? "online" : "";
  // Muting needs a conversation the server knows: a direct one exists from
  // its first message (mute.js).
  const mute = $("mute-toggle");
  mute.hidden = !c || (!c.group && !c.last_seq);
  mute.textContent = c?.muted ? "Unmute" : "Mute";
  const block = $("block-toggle");
  const blocked = Boolean(c?.peer && S.blocked.has(c.peer));
  block.hidden = !c?.peer || c.peer === S.me;
  block.textContent = blocked ? "Unblock" : "Block";
  block.setAttribute("aria-label", `${blocked ? "Unblock" : "Block"} ${c?.peer ? S.name(c.peer) : ""}`);
  $("conv-note").textContent = blocked
    ? `You blocked ${S.name(c.peer)}: they cannot follow you, and their posts are kept out of your feed.`
    : "";
}

export function showTyping(text) {
  $("typing").textContent = text;
}

export function showReaders(names) {
  const d = $("readers");
  $("readers-list").replaceChildren(...names.map((n) => el("li", {}, n)));
  if (!d.open) d.showModal();
}
