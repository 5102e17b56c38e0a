// What the page knows (docs/web.md, "Catching up"). Invariant: for each
// conversation the page holds one contiguous run of sequences [lo, hi]
// (retention's removed ones skipped); a message beyond hi + 1 is a gap,
// filled by sync before it is shown, so messages appear in order, each once.

import * as api from "./api.js";

let changed = () => {};
/// What to call when something shown has changed (app.js: a redraw).
export function onChange(fn) {
  changed = fn;
}

export const S = {
  me: 0,
  convs: new Map(),
  open: null,
  found: null, // the search hit shown: {conv, seq}
  names: new Map(),
  usernames: new Map(), // lower-cased username -> id (mentions)
  online: new Set(),
  groups: new Map(),
  blocked: new Set(), // users this user blocks (blocks.js)
  title: (c) => (c.group ? S.groups.get(c.group)?.name || `Group ${c.group}` : S.name(c.peer)),
  name: (u) => (u === 0 ? "Magpie" : S.names.get(u) || `User ${u}`),
};

/// The conversation `id` ("d:1:2", "g:7"), made on first sight.
export function conv(id) {
  let c = S.convs.get(id);
  if (!c) {
    const [kind, a, b] = id.split(":");
    c = {
      id,
      group: kind === "g" ? Number(a) : 0,
      peer: kind === "d" ? (Number(a) === S.me ? Number(b) : Number(a)) : 0,
      msgs: new Map(),
      lo: 0,
      hi: 0,
      last_seq: 0,
      read_seq: 0,
      peer_read: 0, // the peer's read position (receipts, history)
      peer_delivered: 0, // a device of the peer received up to here (`delivered`)
      unread: 0,
      mentions: 0,
      muted: false, // the user's own mute of its notifications (mute.js)
      more_older: true,
      pending: [],
      readBy: new Map(),
      created: Date.now(),
    };
    S.convs.set(id, c);
    if (c.peer) wantNames([c.peer]);
    if (c.group && !S.groups.has(c.group)) loadGroup(c.group);
  }
  return c;
}

// ---------------------------------------------------------------- names

/// A user profile from a look-up: shown by display name, mentioned by
/// username.
export function known(u) {
  S.names.set(u.id, u.display_name || u.username);
  S.usernames.set(u.username.toLowerCase(), u.id);
}

const unknown = new Set();
let namesTimer = null;
export function wantNames(ids) {
  for (const u of ids) if (u && !S.names.has(u)) unknown.add(u);
  if (unknown.size && !namesTimer) namesTimer = setTimeout(lookupNames, 50);
}

async function lookupNames() {
  namesTimer = null;
  const ids = [...unknown].slice(0, 100);
  ids.forEach((u) => unknown.delete(u));
  try {
    const r = await api.call("POST", "/v1/users/lookup", { ids });
    for (const u of r.users) known(u);
    changed();
  } catch {
    /* names are cosmetic: ids stay shown */
  }
  if (unknown.size) namesTimer = setTimeout(lookupNames, 1000);
}

// ------------------------------------------------------------- messages

/// A message from a push, a send's answer or sync (newer than hi).
export function addNewer(c, m, fromSync) {
  if (m.seq <= c.hi) {
    // Held already (a resend, or the push of one's own send): the held
    // copy stays, with any edit or recall applied to it since.
    if (m.seq >= c.lo && !c.msgs.has(m.seq)) c.msgs.set(m.seq, m);
    return true;
  }
  if (c.hi && m.seq > c.hi + 1 && !fromSync) return false; // a gap: sync fills it
  if (!c.hi) c.lo = m.seq;
  c.msgs.set(m.seq, m);
  c.hi = m.seq;
  c.last_seq = Math.max(c.last_seq, m.seq);
  if (m.from !== S.me && m.from !== 0) wantNames([m.from]);
  if (isEvent(m)) applyEvent(c, m);
  if (m.from === 0 && m.meta?.event && c.group) memberEvent(c, m.meta.event);
  return true;
}

const watchers = [];
/// `fn(c, event)` after each member event (members.js redraws its dialog).
export function onMemberEvent(fn) {
  watchers.push(fn);
}

/// A member event (docs/protocol.md §3.14) as it arrives, in order: a
/// rename or a new owner changes the group the page shows. (A reload reads
/// the group itself: `loadGroups`.)
function memberEvent(c, e) {
  const g = S.groups.get(c.group);
  if (g && e.kind === "renamed") S.groups.set(c.group, { ...g, name: e.name });
  if (g && e.kind === "owner") S.groups.set(c.group, { ...g, owner: e.to });
  for (const fn of watchers) fn(c, e);
}

/// An edit or a recall: a message of its own (it has a sequence) that
/// changes another (docs/protocol.md §5.10); not shown by itself.
export function isEvent(m) {
  return Boolean(m.meta && (m.meta.edit_of || m.meta.recall_of));
}

/// Applies an edit or a recall to the message it names, if held (history
/// and sync give messages already rewritten). A recall wins over an edit.
function applyEvent(c, m) {
  const t = c.msgs.get(m.meta.edit_of || m.meta.recall_of);
  if (!t || t.meta?.recalled) return;
  if (m.meta.recall_of) {
    c.msgs.set(t.seq, { ...t, body: "", meta: { ...t.meta, recalled: true } });
  } else {
    c.msgs.set(t.seq, { ...t, body: m.body, meta: { ...t.meta, edited_at: m.sent_at } });
  }
}

/// Whether `m` mentions this user, by name or `@all` (§5.11).
export function mentionsMe(m) {
  return Boolean(m.meta && (m.meta.mention_all || m.meta.mentions?.includes(S.me)));
}

/// Counts a message the user has not read, unless it lands in the open
/// conversation of a page they are looking at (read at once: markRead).
export function received(c, m) {
  const seen = S.open === c.id && document.visibilityState === "visible";
  if (m.from !== S.me && m.seq > c.read_seq && !seen) {
    c.unread += 1;
    if (mentionsMe(m)) c.mentions += 1;
  }
}

export async function loadGroups() {
  try {
    const r = await api.call("GET", "/v1/groups");
    for (const g of r.groups) {
      S.groups.set(g.id, g);
      conv(`g:${g.id}`);
    }
  } catch {
    /* shown as "Group N" */
  }
}

/// A group the page learns of by a push (added by someone else).
async function loadGroup(id) {
  S.groups.set(id, { id, name: `Group ${id}` });
  try {
    S.groups.set(id, await api.call("GET", `/v1/groups/${id}`));
    changed();
  } catch {
    /* shown as "Group N" */
  }
}

