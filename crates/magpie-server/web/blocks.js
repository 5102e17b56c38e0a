// Blocks (docs/protocol.md §3.16): block or unblock the peer of the open
// direct conversation from its header, and the list of those one blocks
// (in the settings dialog). What a block does is the server's: the blocked
// user can no longer follow the blocker, neither follows the other any
// more, and their posts leave the blocker's feed. A send is refused only
// if the server refuses it (compose.js shows why); the page says what a
// block does rather than promise more.

import { call } from "./api.js";
import { S, wantNames } from "./state.js";

const $ = (id) => document.getElementById(id);
let changed = () => {};

/// Whom this user blocks (every page of `GET /v1/blocks`): after each
/// welcome, so another device's block shows too.
export async function loadBlocks() {
  const all = new Set();
  let after = 0;
  try {
    for (;;) {
      const r = await call("GET", `/v1/blocks?limit=200${after ? `&after=${after}` : ""}`);
      for (const u of r.users) all.add(u);
      if (!r.next) break;
      after = r.next;
    }
  } catch {
    return; // kept as it was; read again after the next welcome
  }
  S.blocked = all;
  wantNames([...all]);
  drawBlocked();
  changed();
}

/// Blocks (`on`) or unblocks `user`; a refusal is shown in `say`.
async function setBlock(user, on, say) {
  $(say).textContent = "";
  try {
    if (on) {
      await call("POST", `/v1/blocks/${user}`);
      S.blocked.add(user);
    } else {
      await call("DELETE", `/v1/blocks/${user}`);
      S.blocked.delete(user);
    }
  } catch (e) {
    $(say).textContent = `Not changed: ${e.message}`;
  }
  drawBlocked();
  changed();
}

/// The settings dialog's list of blocked users, each with Unblock.
export function drawBlocked() {
  const ul = $("blocked-list");
  const users = [...S.blocked].sort((a, b) => a - b);
  ul.replaceChildren(
    ...users.map((u) => {
      const li = document.createElement("li");
      li.dataset.user = String(u);
      const b = document.createElement("button");
      b.type = "button";
      b.className = "link";
      b.textContent = "Unblock";
      b.setAttribute("aria-label", `Unblock ${S.name(u)}`);
      b.addEventListener("click", () => setBlock(u, false, "blocked-error"));
      li.append(`${S.name(u)} `, b);
      return li;
    }),
  );
  $("blocked-empty").hidden = users.length > 0;
}

export function wireBlocks(onChanged) {
  changed = onChanged;
  $("block-toggle").addEventListener("click", () => {
    const c = S.convs.get(S.open);
    if (c?.peer && c.peer !== S.me) setBlock(c.peer, !S.blocked.has(c.peer), "compose-error");
  });
}
