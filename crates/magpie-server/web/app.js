// The web chat client (docs/web.md): the socket's pushes and answers
// applied to the state (state.js), sending, reading, history and the forms.

import * as api from "./api.js";
import { Socket } from "./socket.js";
import * as view from "./view.js";
import { S, conv, wantNames, addNewer, received, loadGroups, onChange } from "./state.js";
import { wireSearch } from "./search.js";
import { composer } from "./compose.js";
import { wireFeed, hideFeed, onPost } from "./feed.js";
import { readBy, wireMembers } from "./members.js";
import { wireProfile } from "./profile.js";
import { wireSettings } from "./settings.js";
import { loadBlocks, wireBlocks } from "./blocks.js";
import { unreadTotal, wireMute } from "./mute.js";

const PAGE = 30;

let socket = null;
const $ = (id) => document.getElementById(id);

function onPush(f) {
  switch (f.op) {
    case "msg": {
      socket.tell({ op: "ack", conv: f.conv, seqs: [f.seq] });
      const c = conv(f.conv);
      const isNew = f.seq > c.hi;
      // Another device's send, or this one's before its `sent`: either way
      // the message is durable now and shown once, by its sequence.
      if (f.from === S.me) c.pending = c.pending.filter((p) => p.cmid !== f.cmid);
      if (!addNewer(c, f, false)) {
        catchUp({ [c.id]: c.hi });
        return;
      }
      if (isNew) received(c, f);
      if (f.from !== S.me) clearTyping(c.id, f.from);
      redraw();
      markRead();
      break;
    }
    case "receipt": {
      const c = conv(f.conv);
      if (f.reader !== S.me) c.peer_read = Math.max(c.peer_read, f.seq);
      redraw();
      break;
    }
    case "delivered": {
      const c = conv(f.conv);
      c.peer_delivered = Math.max(c.peer_delivered, f.seq);
      redraw();
      break;
    }
    case "group_receipt": {
      conv(f.conv).readBy.set(f.seq, f.read);
      redraw();
      break;
    }
    case "read_sync": {
      const c = conv(f.conv);
      c.read_seq = Math.max(c.read_seq, f.seq);
      refreshUnread();
      break;
    }
    case "presence":
      if (f.online) S.online.add(f.user);
      else S.online.delete(f.user);
      redraw();
      break;
    case "typing":
      onTyping(f);
      break;
    case "post":
      onPost(f);
      break;
    case "resync":
      catchUp();
      break;
    default:
      break;
  }
}

/// Everything missed since this page's positions: sync until no
/// conversation has more. A conversation the page holds nothing of starts
/// at its newest message (older ones come by history when it is opened).
async function catchUp(only) {
  let positions = only;
  if (!positions) {
    positions = {};
    for (const c of S.convs.values()) {
      positions[c.id] = c.hi || Math.max(0, c.last_seq - 1);
    }
  }
  try {
    for (;;) {
      const r = await socket.request({ op: "sync", convs: positions, limit: 100 });
      const again = {};
      for (const sc of r.convs) {
        const c = conv(sc.conv);
        if (!c.hi && !sc.messages.length) {
          // Nothing left to show (retention removed it): older pages may
          // still come by history, below lo.
          c.hi = sc.last_seq;
          c.lo = sc.last_seq + 1;
        }
        for (const m of sc.messages) {
          const isNew = m.seq > c.hi;
          addNewer(c, m, true);
          // A full catch-up follows `unread`, which counted these already.
          if (isNew && only) received(c, m);
        }
        c.last_seq = sc.last_seq;
        c.read_seq = Math.max(c.read_seq, sc.read_seq);
        if (sc.more) again[sc.conv] = c.hi;
        else c.hi = Math.max(c.hi, sc.last_seq);
      }
      if (!Object.keys(again).length) break;
      positions = again;
    }
  } catch {
    return; // disconnected: the next welcome syncs again
  }
  redraw();
  markRead();
}

async function refreshUnread() {
  try {
    const r = await socket.request({ op: "unread" });
    for (const u of r.convs) {
      const c = conv(u.conv);
      c.unread = u.unread;
      c.mentions = u.mentions || 0;
      c.muted = Boolean(u.muted);
      c.last_seq = Math.max(c.last_seq, u.last_seq);
      c.read_seq = Math.max(c.read_seq, u.read_seq);
    }
    redraw();
  } catch {
    /* the next welcome reads it again */
  }
}

async function onWelcome() {
  await Promise.all([loadGroups(), loadBlocks()]);
  await refreshUnread();
  await catchUp();
  watchPresence();
}

// ------------------------------------------------------------ reading

let readTimer = null;
/// The open conversation is read up to what it shows, while the page is seen.
function markRead() {
  clearTimeout(readTimer);
  readTimer = setTimeout(async () => {
    const c = S.convs.get(S.open);
    if (!c || document.visibilityState !== "visible" || c.hi <= c.read_seq) return;
    try {
      const r = await socket.request({ op: "read", conv: c.id, seq: c.hi });
      c.read_seq = Math.max(c.read_seq, r.seq);
      if (c.read_seq >= c.last_seq) {
        c.unread = 0;
        c.mentions = 0;
      } else {
        await refreshUnread();
      }
      redraw();
    } catch {
      /* read again after the next welcome */
    }
  }, 200);
}

// ---------------------------------------------------- typing, presence

let typedAt = 0;
function typed() {
  const c = S.convs.get(S.open);
  if (!c || Date.now() - typedAt < 3000) return;
  typedAt = Date.now();
  socket.tell({ op: "typing", conv: c.id });
}

const typing = new Map(); // conv -> Map(user -> {name, until})
function onTyping(f) {
  const t = typing.get(f.conv) || new Map();
  typing.set(f.conv, t);
  if (f.active) t.set(f.user, { name: f.name, until: Date.now() + f.ttl_ms });
  else t.delete(f.user);
  setTimeout(drawTyping, f.ttl_ms + 50);
  drawTyping();
}

function clearTyping(convId, user) {
  typing.get(convId)?.delete(user);
  drawTyping();
}

function drawTyping() {
  const t = typing.get(S.open);
  const names = t ? [...t.values()].filter((x) => x.until > Date.now()).map((x) => x.name) : [];
  view.showTyping(names.length ? `${names.join(", ")} ${names.length > 1 ? "are" : "is"} typing…` : "");
}

function watchPresence() {
  const c = S.convs.get(S.open);
  const users = c && c.peer ? [c.peer] : [];
  socket
    .request({ op: "presence_watch", users })
    .then((r) => {
      for (const u of users) S.online.delete(u);
      for (const u of r.online) S.online.add(u);
      redraw();
    })
    .catch(() => {});
}

// ------------------------------------------------------- conversations

const loadingOlder = new Map(); // conv -> the page being loaded
/// One older page at a time per conversation; resolves when it is drawn.
function loadOlder(c) {
  if (!loadingOlder.has(c.id)) {
    loadingOlder.set(c.id, olderPage(c).finally(() => loadingOlder.delete(c.id)));
  }
  return loadingOlder.get(c.id);
}

async function olderPage(c) {
  if (!c.more_older || (c.hi && c.lo <= 1)) return;
  try {
    const before = c.hi ? c.lo : c.last_seq + 1;
    const r = await socket.request({ op: "history", conv: c.id, before, limit: PAGE });
    peerRead(c, r);
    for (const m of r.messages) {
      if (!c.hi) c.hi = m.seq;
      c.msgs.set(m.seq, m);
      c.lo = c.lo ? Math.min(c.lo, m.seq) : m.seq;
      wantNames([m.from]);
    }
    c.more_older = r.more && c.lo > 1;
    if (!r.messages.length) c.more_older = false;
    if (S.open === c.id) view.drawConversation(S, c, handlers, true);
  } catch {
    /* tried again on the next scroll */
  }
  const ol = $("messages");
  if (S.open === c.id && c.more_older && ol.scrollHeight <= ol.clientHeight) {
    setTimeout(() => loadOlder(c), 0);
  }
}

/// A direct conversation's peer's read position, as history tells it
/// (docs/protocol.md §3.10): "Read" marks that survive a reload.
function peerRead(c, page) {
  if (page.peer_read_seq > c.peer_read) {
    c.peer_read = page.peer_read_seq;
    if (S.open === c.id) redraw();
  }
}

/// Opens a conversation at one message (a search hit), loading older
/// pages until it is there.
async function reveal(id, seq) {
  pick(id);
  const c = conv(id);
  for (let i = 0; i < 50 && (!c.hi || c.lo > seq) && c.more_older; i++) {
    await loadOlder(c);
  }
  S.found = { conv: id, seq };
  view.drawConversation(S, c, handlers);
  document.querySelector(`#messages li.msg[data-seq="${seq}"]`)?.scrollIntoView({ block: "center" });
}

function pick(id) {
  hideFeed();
  S.open = id;
  S.found = null;
  const c = conv(id);
  redraw();
  $("messages").scrollTop = $("messages").scrollHeight;
  if (c.hi - c.lo < PAGE) loadOlder(c);
  else if (c.peer) socket.request({ op: "history", conv: c.id, limit: 1 }).then((r) => peerRead(c, r), () => {});
  markRead();
  watchPresence();
  drawTyping();
  $("compose").focus();
}

/// One has left group `g`: its conversation goes from the list (the
/// server shows none of it any more).
function left(g) {
  S.convs.delete(`g:${g}`);
  S.groups.delete(g);
  if (S.open === `g:${g}`) S.open = null;
  redraw();
}

const writer = composer({
  request: (frame) => socket.request(frame),
  redraw: () => redraw(),
  catchUp: (convs) => catchUp(convs),
});
const handlers = { retry: writer.deliver, discard: writer.discard, readBy, act: writer.act };

// One redraw for everything that changed in one turn of the event loop.
// (A timer, not requestAnimationFrame: a page in the background gets no
// animation frames, and its list and badges must still be right when the
// user comes back.)
let frame = 0;
function redraw() {
  if (frame) return;
  frame = setTimeout(() => {
    frame = 0;
    view.drawList(S, pick);
    const c = S.convs.get(S.open);
    view.drawHeader(S, c);
    if (c) view.drawConversation(S, c, handlers);
    view.showTotal(unreadTotal()); // muted conversations left out
  }, 0);
}

// --------------------------------------------------------------- forms

async function startChat(name) {
  const u = await api.call("GET", `/v1/users?name=${encodeURIComponent(name)}`);
  S.names.set(u.id, u.display_name || u.username);
  const [a, b] = u.id < S.me ? [u.id, S.me] : [S.me, u.id];
  pick(`d:${a}:${b}`);
}

async function createGroup(name, members) {
  const ids = [];
  for (const m of members) {
    const u = await api.call("GET", `/v1/users?name=${encodeURIComponent(m)}`);
    S.names.set(u.id, u.display_name || u.username);
    ids.push(u.id);
  }
  const g = await api.call("POST", "/v1/groups", { name, members: ids });
  S.groups.set(g.id, g);
  pick(`g:${g.id}`);
}

function showError(id, e) {
  $(id).textContent = e ? e.message || String(e) : "";
}

function enter(session) {
  S.me = session.user_id;
  S.names.set(S.me, session.username);
  $("me").textContent = session.username;
  $("auth").hidden = true;
  $("chat").hidden = false;
  socket = new Socket({ onPush, onState: view.showBanner, onWelcome });
  socket.start();
}

function leave() {
  socket?.stop();
  socket = null;
  api.end();
  location.reload();
}

function wire() {
  onChange(redraw);
  $("auth-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const username = $("username").value.trim();
    const password = $("password").value;
    showError("auth-error", null);
    try {
      if (e.submitter?.value === "register") await api.register(username, password);
      enter(await api.login(username, password));
    } catch (err) {
      showError("auth-error", err);
    }
  });
  $("logout").addEventListener("click", leave);
  $("new-chat").addEventListener("submit", async (e) => {
    e.preventDefault();
    showError("new-chat-error", null);
    try {
      await startChat($("new-chat-name").value.trim());
      $("new-chat-name").value = "";
    } catch (err) {
      showError("new-chat-error", err.status === 404 ? { message: "No such user" } : err);
    }
  });
  $("new-group").addEventListener("submit", async (e) => {
    e.preventDefault();
    showError("new-group-error", null);
    const members = $("group-members").value.split(/[\s,]+/).filter(Boolean);
    try {
      await createGroup($("group-name").value.trim(), members);
      $("group-name").value = "";
      $("group-members").value = "";
      $("new-group").closest("details").open = false;
    } catch (err) {
      showError("new-group-error", err.status === 404 ? { message: "No such user" } : err);
    }
  });
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    writer.submit(S.convs.get(S.open));
  });
  $("compose-cancel").addEventListener("click", writer.cancel);
  $("compose").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("compose").addEventListener("input", typed);
  $("messages").addEventListener("scroll", () => {
    const c = S.convs.get(S.open);
    if (c && $("messages").scrollTop < 80) loadOlder(c);
  });
  $("readers-close").addEventListener("click", () => $("readers").close());
  document.addEventListener("visibilitychange", markRead);
  wireSearch({ title: (id) => S.title(conv(id)), open: reveal });
  wireMembers(left, redraw);
  wireProfile(redraw);
  wireSettings();
  wireBlocks(redraw);
  wireMute(redraw);
  wireFeed(() => {
    S.open = null;
    redraw();
  });
  api.onSessionEnded(leave);
}

async function main() {
  wire();
  let restored = null;
  try {
    restored = await api.restore();
  } catch {
    restored = null; // the kept session could not be renewed: log in again
  }
  if (restored) enter(restored);
  else $("auth").hidden = false;
}

main();
