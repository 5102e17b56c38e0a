// A group's members (docs/protocol.md §3.14): the list with roles; owners
// and admins add members by name, remove plain members (the owner anyone)
// and rename the group; the owner changes roles and hands the group to
// another member; anyone but the owner leaves. The server decides; a
// refusal is shown as it answered. Also the read-by list of a message.

import { call } from "./api.js";
import { S, known, wantNames, onMemberEvent } from "./state.js";
import { showReaders } from "./view.js";

const $ = (id) => document.getElementById(id);
let group = 0;
let onLeft = () => {};
let changed = () => {};
let heir = 0; // the member the owner is asked to confirm handing the group to

/// A button whose accessible name starts with its visible text (so a
/// voice user can say what they see) and names whom it acts on.
function button(text, label, fn) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "link";
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", () => fn().catch((e) => ($("members-error").textContent = e.message)));
  return b;
}

async function draw() {
  const all = [];
  let after = 0;
  for (;;) {
    const r = await call("GET", `/v1/groups/${group}/members?limit=200${after ? `&after=${after}` : ""}`);
    all.push(...r.members);
    if (!r.next) break;
    after = r.next;
  }
  wantNames(all.map((m) => m.user));
  // Names come by one look-up: give it a moment before drawing.
  if (all.some((m) => !S.names.has(m.user))) await new Promise((res) => setTimeout(res, 300));
  const mine = all.find((m) => m.user === S.me)?.role || "member";
  const manage = mine === "owner" || mine === "admin";
  title();
  $("members-list").replaceChildren(
    ...all.map((m) => {
      const li = document.createElement("li");
      li.dataset.user = String(m.user);
      const name = S.name(m.user);
      li.append(`${m.user === S.me ? `${name} (you)` : name} · ${m.role}`);
      if (m.user !== S.me && m.role !== "owner") {
        if (mine === "owner") {
          const to = m.role === "admin" ? "member" : "admin";
          li.append(" ", button(`Make ${to}`, `Make ${to}: ${name}`, () => patch(m.user, { role: to })));
        }
        if (mine === "owner" || (manage && m.role === "member")) {
          li.append(" ", button("Remove", `Remove: ${name}`, () => remove(m.user)));
        }
        if (mine === "owner") li.append(" ", button("Make owner", `Make owner: ${name}`, async () => ask(m.user)));
      }
      return li;
    }),
  );
  $("members-add").hidden = !manage;
  $("members-rename").hidden = !manage;
  $("members-leave").hidden = mine === "owner";
  if (mine !== "owner") confirmed(false);
}

function title() {
  $("members-title").textContent = `Members of ${S.groups.get(group)?.name || `group ${group}`}`;
}

/// Asks the owner to confirm handing the group to `user`.
function ask(user) {
  heir = user;
  $("members-confirm-text").textContent = `Make ${S.name(user)} the owner? You will be an admin.`;
  $("members-confirm").hidden = false;
  $("members-confirm-yes").focus();
}

async function confirmed(yes) {
  const user = heir;
  heir = 0;
  $("members-confirm").hidden = true;
  if (!yes || !user) return;
  const g = await call("PUT", `/v1/groups/${group}/owner`, { user });
  S.groups.set(g.id, g);
  $("members-status").textContent = `${S.name(user)} is the owner now`;
  changed();
  await draw();
}

async function rename(name) {
  const g = await call("PATCH", `/v1/groups/${group}`, { name });
  S.groups.set(g.id, g);
  $("members-status").textContent = `Renamed to ${g.name}`;
  title();
  changed();
}

async function patch(user, body) {
  await call("PATCH", `/v1/groups/${group}/members/${user}`, body);
  await draw();
}

async function remove(user) {
  await call("DELETE", `/v1/groups/${group}/members/${user}`);
  await draw();
}

/// Opens the members dialog of group `id`.
async function showMembers(id) {
  group = id;
  heir = 0;
  $("members-confirm").hidden = true;
  $("members-error").textContent = "";
  $("members-status").textContent = "";
  $("members-rename-name").value = S.groups.get(id)?.name || "";
  title();
  if (!$("members").open) $("members").showModal();
  await draw().catch((e) => ($("members-error").textContent = e.message));
}

/// Who read one's group message `seq` (the list a "Read by N" opens).
export async function readBy(c, seq) {
  try {
    const r = await call("GET", `/v1/groups/${c.group}/messages/${seq}/read_by?limit=100`);
    const others = r.users.filter((u) => u !== S.me);
    wantNames(others);
    if (others.some((u) => !S.names.has(u))) await new Promise((res) => setTimeout(res, 300));
    showReaders(others.map((u) => S.name(u)));
  } catch {
    /* the count stays shown */
  }
}

/// `left(group)` runs after leaving; `redraw()` after a rename or a new
/// owner.
export function wireMembers(left, redraw) {
  onLeft = left;
  changed = redraw;
  $("open-members").addEventListener("click", () => {
    const c = S.convs.get(S.open);
    if (c?.group) showMembers(c.group);
  });
  // Another member's change, seen while the dialog is open: drawn again.
  onMemberEvent((c, e) => {
    if (!$("members").open || c.group !== group) return;
    if (e.kind !== "renamed") {
      draw().catch(() => {});
      return;
    }
    title();
    if (document.activeElement !== $("members-rename-name")) $("members-rename-name").value = e.name;
  });
  $("members-rename").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("members-error").textContent = "";
    $("members-status").textContent = "";
    try {
      await rename($("members-rename-name").value.trim());
    } catch (err) {
      $("members-error").textContent = err.message;
    }
  });
  const settle = (yes) => {
    $("members-close").focus(); // the question goes away: keep the focus in the dialog
    confirmed(yes).catch((err) => ($("members-error").textContent = err.message));
  };
  $("members-confirm-yes").addEventListener("click", () => settle(true));
  $("members-confirm-no").addEventListener("click", () => settle(false));
  $("members-add").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("members-error").textContent = "";
    try {
      const u = await call("GET", `/v1/users?name=${encodeURIComponent($("members-name").value.trim())}`);
      known(u);
      await call("POST", `/v1/groups/${group}/members`, { users: [u.id] });
      $("members-name").value = "";
      await draw();
    } catch (err) {
      $("members-error").textContent = err.status === 404 ? "No such user" : err.message;
    }
  });
  $("members-leave").addEventListener("click", async () => {
    try {
      await call("DELETE", `/v1/groups/${group}/members/${S.me}`);
      $("members").close();
      onLeft(group);
    } catch (err) {
      $("members-error").textContent = err.message;
    }
  });
  $("members-close").addEventListener("click", () => $("members").close());
}
