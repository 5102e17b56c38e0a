// A group's members (docs/protocol.md §3.14): the list with roles; owners
// and admins add members by name and remove plain members (the owner
// anyone), the owner changes roles, anyone but the owner leaves. The
// server decides; a refusal is shown as it answered.

import { call } from "./api.js";
import { S, known, wantNames } from "./state.js";

const $ = (id) => document.getElementById(id);
let group = 0;
let onLeft = () => {};

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
      }
      return li;
    }),
  );
  $("members-add").hidden = !manage;
  $("members-leave").hidden = mine === "owner";
}

async function patch(user, body) {
  await call("PATCH", `/v1/groups/${group}/members/${user}`, body);
  await draw();
}

async function remove(user) {
  await call("DELETE", `/v1/groups/${group}/members/${user}`);
  await draw();
}

/// Opens the members dialog of group `id`; `left()` runs after leaving.
export async function showMembers(id, left) {
  group = id;
  onLeft = left;
  $("members-error").textContent = "";
  $("members-title").textContent = `Members of ${S.groups.get(id)?.name || `group ${id}`}`;
  if (!$("members").open) $("members").showModal();
  await draw().catch((e) => ($("members-error").textContent = e.message));
}

export function wireMembers() {
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
