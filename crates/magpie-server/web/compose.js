// Writing: the composer, sending with a client id, retries, replies,
// edits, recalls and mentions (docs/protocol.md §5.10, §5.11).

import { call } from "./api.js";
import { S, addNewer, known } from "./state.js";

const SEND_TIMEOUT_MS = 15_000;
const $ = (id) => document.getElementById(id);

export function uuidv7() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  let ms = Date.now();
  for (let i = 5; i >= 0; i--) {
    b[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  b[6] = (b[6] & 0x0f) | 0x70;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/// `request(frame)` answers a socket request; `redraw()`; `catchUp(convs)`
/// fills a gap.
export function composer({ request, redraw, catchUp }) {
  /// Sends (or sends again, with the same cmid: the server answers a
  /// retry with the original message, §1.3) one pending message. Edits and
  /// recalls are `silent`: no bubble of their own, an error shown by the
  /// composer.
  async function deliver(c, p) {
    p.state = "sending";
    p.error = "";
    redraw();
    const frame = { op: "send", cmid: p.cmid, body: p.body, ...p.refs };
    if (c.group) frame.group = c.group;
    else frame.to = c.peer;
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject({ message: "no answer" }), SEND_TIMEOUT_MS);
    });
    try {
      const r = await Promise.race([request(frame), timeout]);
      c.pending = c.pending.filter((x) => x !== p);
      const meta = metaOf(p.refs);
      const m = { server_id: r.server_id, conv: r.conv, seq: r.seq, from: S.me, to: c.peer, cmid: p.cmid, body: p.body, sent_at: r.sent_at, meta };
      if (!addNewer(c, m, false)) catchUp({ [c.id]: c.hi });
      if (c.group) c.read_seq = Math.max(c.read_seq, r.seq);
    } catch (e) {
      p.state = "failed";
      p.error = why(c, e);
      if (p.silent) {
        c.pending = c.pending.filter((x) => x !== p);
        $("compose-error").textContent = p.error;
      }
    } finally {
      clearTimeout(timer);
    }
    redraw();
  }

  function send(c, body, refs, silent = false) {
    const p = { cmid: uuidv7(), body, refs, silent, state: "sending" };
    c.pending.push(p);
    return deliver(c, p);
  }

  /// The reply or edit the composer is writing: {kind, conv, seq}.
  let context = null;
  function setContext(next, label = "") {
    context = next;
    $("compose-context").hidden = !next;
    $("compose-context-text").textContent = label;
  }

  function act(kind, c, m) {
    $("compose-error").textContent = "";
    if (kind === "recall") {
      send(c, "", { recall: m.seq }, true);
    } else if (kind === "edit") {
      setContext({ kind, conv: c.id, seq: m.seq }, "Editing your message");
      $("compose").value = m.body;
      $("compose").focus();
    } else {
      const who = m.from === S.me ? "yourself" : S.name(m.from);
      setContext({ kind, conv: c.id, seq: m.seq }, `Replying to ${who}: ${m.body.slice(0, 80)}`);
      $("compose").focus();
    }
  }

  async function submit(c) {
    const body = $("compose").value;
    if (!c || !body.trim()) return;
    $("compose").value = "";
    $("compose-error").textContent = "";
    const ctx = context && context.conv === c.id ? context : null;
    setContext(null);
    if (ctx?.kind === "edit") return send(c, body, { edit: ctx.seq }, true);
    const refs = ctx?.kind === "reply" ? { reply_to: ctx.seq } : {};
    if (c.group) Object.assign(refs, await mentions(body));
    return send(c, body, refs);
  }

  return {
    deliver,
    act,
    submit,
    cancel: () => setContext(null),
    discard(c, p) {
      c.pending = c.pending.filter((x) => x !== p);
      redraw();
    },
  };
}

/// Why a send failed, as the sender should read it: a refusal by the
/// server's rules (docs/protocol.md §7, `forbidden`: a group's moderation
/// mute, a group one is no longer in; a user who does not take one's
/// messages) says so, and retrying will not help until that changes.
function why(c, e) {
  if (e.code === "forbidden") {
    return c.group
      ? "you cannot send to this group now (muted by its admins, or no longer a member)"
      : `${S.name(c.peer)} does not accept your messages`;
  }
  return e.message || e.code || "";
}

function metaOf(refs = {}) {
  const meta = {};
  if (refs.reply_to) meta.reply_to = refs.reply_to;
  if (refs.edit) meta.edit_of = refs.edit;
  if (refs.recall) meta.recall_of = refs.recall;
  if (refs.mentions?.length) meta.mentions = refs.mentions;
  if (refs.mention_all) meta.mention_all = true;
  return Object.keys(meta).length ? meta : undefined;
}

/// `@name` and `@all` in a group message: the ids the server counts. A
/// name that is no user is left as text.
async function mentions(body) {
  const out = { mentions: [] };
  for (const [, name] of body.matchAll(/(?:^|\s)@([A-Za-z0-9._-]{1,32})/g)) {
    if (name.toLowerCase() === "all") {
      out.mention_all = true;
      continue;
    }
    let id = S.usernames.get(name.toLowerCase());
    if (!id) {
      try {
        const u = await call("GET", `/v1/users?name=${encodeURIComponent(name)}`);
        known(u);
        id = u.id;
      } catch {
        continue;
      }
    }
    if (!out.mentions.includes(id)) out.mentions.push(id);
  }
  if (!out.mentions.length) delete out.mentions;
  return out;
}
