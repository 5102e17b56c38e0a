// Message search (docs/search.md): the server decides what the caller may
// see; the page shows the hits with the matched parts marked, newest first,
// and opens a hit's conversation at its message.

import { call } from "./api.js";
import { time } from "./view.js";

const $ = (id) => document.getElementById(id);

function snippet(parts) {
  const p = document.createElement("span");
  p.className = "snippet";
  for (const part of parts) {
    // Text nodes only: a message's text is never read as markup.
    if (part.hit) {
      const m = document.createElement("mark");
      m.textContent = part.text;
      p.append(m);
    } else {
      p.append(document.createTextNode(part.text));
    }
  }
  return p;
}

/// `title(convId)` names a conversation, `open(convId, seq)` shows a hit.
export function wireSearch({ title, open }) {
  let next = null;
  let text = "";

  async function page(more) {
    const q = new URLSearchParams({ text, limit: "20" });
    if (more && next) q.set("cursor", next);
    const r = await call("GET", `/v1/search?${q}`);
    next = r.next || null;
    const ul = $("search-results");
    if (!more) ul.replaceChildren();
    for (const hit of r.hits) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "hit";
      b.dataset.conv = hit.conv;
      b.dataset.seq = String(hit.seq);
      const head = document.createElement("span");
      head.className = "hit-title";
      head.textContent = title(hit.conv);
      const when = document.createElement("time");
      when.dateTime = new Date(hit.sent_at).toISOString();
      when.textContent = time(hit.sent_at);
      b.append(head, when, snippet(hit.snippet));
      b.addEventListener("click", () => open(hit.conv, hit.seq));
      const li = document.createElement("li");
      li.append(b);
      ul.append(li);
    }
    $("search-more").hidden = !next;
    $("search-status").textContent = ul.children.length
      ? `${ul.children.length} found${r.rebuilding ? " (the index is being rebuilt)" : ""}`
      : "No messages found";
  }

  $("search").addEventListener("submit", async (e) => {
    e.preventDefault();
    text = $("search-text").value.trim();
    if (!text) return;
    $("search-status").textContent = "Searching…";
    try {
      await page(false);
    } catch (err) {
      $("search-status").textContent = err.message || "Search failed";
    }
  });
  $("search-more").addEventListener("click", () => page(true).catch(() => {}));
}
