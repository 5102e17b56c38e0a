// Follows and the home feed (docs/feeds.md, docs/protocol.md §3.16): follow
// a user by name, publish a post, read the posts of those one follows and
// one's own, newest first, with new ones pushed while the page is open.

import { call } from "./api.js";
import { S, known, wantNames } from "./state.js";
import { uuidv7 } from "./compose.js";
import { time } from "./view.js";

const $ = (id) => document.getElementById(id);

const posts = new Map(); // id -> post
// Two sources merged by id: the home feed (those one follows) and one's
// own posts, each paged by its own cursor.
let next = null;
let nextOwn = null;

function draw() {
  const ol = $("posts");
  const sorted = [...posts.values()].sort((a, b) => (BigInt(b.id) > BigInt(a.id) ? 1 : -1));
  ol.replaceChildren(
    ...sorted.map((p) => {
      const li = document.createElement("li");
      li.className = "post";
      li.dataset.post = p.id;
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = p.author === S.me ? "You" : S.name(p.author);
      const when = document.createElement("time");
      when.dateTime = new Date(p.created_at).toISOString();
      when.textContent = time(p.created_at);
      const body = document.createElement("p");
      body.className = "body";
      body.textContent = p.body;
      li.append(who, when, body);
      if (p.author === S.me) {
        const del = document.createElement("button");
        del.type = "button";
        del.className = "link";
        del.textContent = "Delete";
        del.addEventListener("click", () => remove(p));
        li.append(del);
      }
      return li;
    }),
  );
  $("feed-more").hidden = !next && !nextOwn;
  $("feed-empty").hidden = posts.size > 0;
}

function keep(list) {
  for (const p of list) posts.set(p.id, p);
  wantNames(list.map((p) => p.author));
}

async function load(more) {
  const feed = !more || next ? call("GET", `/v1/feed${more ? `?before=${next}` : ""}`) : null;
  const own = !more || nextOwn ? call("GET", `/v1/users/${S.me}/posts${more ? `?before=${nextOwn}` : ""}`) : null;
  const [f, o] = await Promise.all([feed, own]);
  if (!more) posts.clear();
  if (f) {
    keep(f.posts);
    next = f.next || null;
  }
  if (o) {
    keep(o.posts);
    nextOwn = o.next || null;
  }
  draw();
}

async function remove(p) {
  try {
    await call("DELETE", `/v1/posts/${p.id}`);
    posts.delete(p.id);
    draw();
  } catch (e) {
    $("feed-status").textContent = e.message;
  }
}

/// A `post` frame: a new post of someone followed (best effort; the feed
/// read is the truth).
export function onPost(f) {
  keep([f.post]);
  if (!$("feed").hidden) draw();
}

/// Shows the feed in place of the open conversation.
export function showFeed() {
  $("conversation").hidden = true;
  $("feed").hidden = false;
  $("feed-status").textContent = "";
  load(false).catch((e) => ($("feed-status").textContent = e.message));
}

export function hideFeed() {
  $("feed").hidden = true;
  $("conversation").hidden = false;
}

export function wireFeed(onShow) {
  $("open-feed").addEventListener("click", () => {
    onShow();
    showFeed();
  });
  $("follow").addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = $("follow-name").value.trim();
    try {
      const u = await call("GET", `/v1/users?name=${encodeURIComponent(name)}`);
      known(u);
      await call("POST", `/v1/follows/${u.id}`);
      $("follow-name").value = "";
      $("feed-status").textContent = `You follow ${u.display_name || u.username}`;
      await load(false);
    } catch (err) {
      // 403: a block, by either side (§3.16).
      const why = { 404: "No such user", 403: `You cannot follow ${name}` }[err.status];
      $("feed-status").textContent = why || err.message;
    }
  });
  $("post-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = $("post-body").value.trim();
    if (!body) return;
    try {
      // A retry with the same cmid would answer the same post (§3.16).
      const r = await call("POST", "/v1/posts", { cmid: uuidv7(), body });
      $("post-body").value = "";
      keep([r.post]);
      draw();
    } catch (err) {
      $("feed-status").textContent = err.message;
    }
  });
  $("feed-more").addEventListener("click", () => load(true).catch(() => {}));
}
