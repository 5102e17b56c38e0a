// Muting a conversation (docs/protocol.md §5.11): the user's own setting,
// which silences the offline push of its messages (a mention still comes
// through). A muted conversation is still delivered and counted: its badge
// stays, drawn muted, but it leaves the header's and the title's total.
// The flag comes with every `unread` answer (app.js, refreshUnread).

import { call } from "./api.js";
import { S } from "./state.js";

const $ = (id) => document.getElementById(id);

/// The total the header and the tab's title show: unread messages of the
/// conversations that are not muted.
export function unreadTotal() {
  let total = 0;
  for (const c of S.convs.values()) if (!c.muted) total += c.unread;
  return total;
}

async function toggle(changed) {
  const c = S.convs.get(S.open);
  if (!c) return;
  $("compose-error").textContent = "";
  try {
    const r = await call("PUT", `/v1/conversations/${c.id}/mute`, { muted: !c.muted });
    c.muted = Boolean(r.muted);
  } catch (e) {
    $("compose-error").textContent =
      e.status === 404 ? "Nothing to mute yet: this conversation has no message" : `Not changed: ${e.message}`;
  }
  changed();
}

export function wireMute(changed) {
  $("mute-toggle").addEventListener("click", () => toggle(changed));
}
