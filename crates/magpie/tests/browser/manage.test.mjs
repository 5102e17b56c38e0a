// Managing groups and conversations in the web client (docs/web.md;
// docs/protocol.md §3.6, §3.14, §3.16, §5.11): a group renamed by its owner
// and by an admin, seen on the members' pages live and after a reload; the
// group handed to another member, who then has the owner's controls; a
// muted conversation left out of the total; a block and its undoing; a
// refused send shown to its sender; the settings kept across a reload.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as h from "./harness.mjs";

const env = h.setup();

const entry = (p, text) => p.locator("#conv-list button.conv", { hasText: text });
const titles = (p) => p.locator("#conv-list .conv-title").allTextContents();

/// An HTTP call with the page's own session, as the page would make it.
function api(p, method, path, body) {
  return p.evaluate(
    async ({ method, path, body }) => {
      const s = JSON.parse(sessionStorage.getItem("magpie.session"));
      const headers = { authorization: `Bearer ${s.access_token}` };
      if (body) headers["content-type"] = "application/json";
      const r = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : null };
    },
    { method, path, body },
  );
}

const userId = async (p, name) => (await api(p, "GET", `/v1/users?name=${name}`)).body.id;

async function reload(p) {
  await p.reload();
  await p.locator("#chat").waitFor();
  await p.locator("#banner").waitFor({ state: "hidden" });
}

async function members(p, group) {
  await entry(p, group).click();
  await p.getByRole("button", { name: "Members" }).click();
  await p.locator("#members-list li").first().waitFor();
}

async function closeAll(pages) {
  for (const p of pages) assert.deepEqual(p.errors, [], "no script errors");
  for (const p of pages) await p.context().close();
}

test("the owner and an admin rename a group: every member's page shows it, live and after a reload", async () => {
  const [owner, m1, m2] = ["own", "adm", "mem"].map(h.uniqueName);
  const [o, p1, p2] = await h.signUp(env, [owner, m1, m2]);
  await h.createGroup(o, "Crew", [m1, m2]);
  await h.say(o, "hello crew");
  await entry(p1, "Crew").waitFor();
  await entry(p2, "Crew").click(); // open on this page: its header follows too
  await p2.locator("#messages li.msg", { hasText: "hello crew" }).waitFor();

  await o.getByRole("button", { name: "Members" }).click();
  await o.locator("#members-list li", { hasText: m2 }).waitFor();
  await o.getByLabel("Name of the group").fill("Night crew");
  await o.getByRole("button", { name: "Rename" }).click();
  await o.locator("#members-status", { hasText: "Renamed to Night crew" }).waitFor();
  await o.locator("#members-title", { hasText: "Night crew" }).waitFor();
  await o.locator("#conv-title", { hasText: "Night crew" }).waitFor();
  await h.screenshot(o, "group-manage");
  assert.deepEqual(await h.accessibility(o), [], "the members dialog with rename and hand-over");

  // Live on the others' pages: the list, the open header, the event itself.
  await p2.locator("#conv-title", { hasText: "Night crew" }).waitFor();
  await p2.locator("#messages li.msg.system", { hasText: "Night crew" }).waitFor();
  await entry(p2, "Night crew").waitFor();
  await entry(p1, "Night crew").waitFor();

  // An admin renames it too; a plain member cannot.
  await o.getByRole("button", { name: `Make admin: ${m1}` }).click();
  await o.locator("#members-list li", { hasText: m1 }).filter({ hasText: "admin" }).waitFor();
  await o.locator("#members-close").click();
  await members(p1, "Night crew");
  await p1.getByLabel("Name of the group").fill("Day crew");
  await p1.getByRole("button", { name: "Rename" }).click();
  await p1.locator("#members-status", { hasText: "Renamed to Day crew" }).waitFor();
  await p2.locator("#conv-title", { hasText: "Day crew" }).waitFor();
  await entry(o, "Day crew").waitFor();
  await p2.getByRole("button", { name: "Members" }).click();
  await p2.locator("#members-list li", { hasText: owner }).waitFor();
  assert.ok(await p2.locator("#members-rename").isHidden(), "a plain member has no rename form");
  await p2.locator("#members-close").click();

  // After a reload the page reads the group's name from the server.
  await reload(p2);
  await entry(p2, "Day crew").waitFor();
  assert.deepEqual(await titles(p2), ["Day crew"]);
  await entry(p2, "Day crew").click();
  await p2.locator("#conv-title", { hasText: "Day crew" }).waitFor();
  await closeAll([o, p1, p2]);
});

test("the owner hands the group to a member, who gets the owner's controls at once", async () => {
  const [owner, heir, m2] = ["own", "heir", "mem"].map(h.uniqueName);
  const [o, p1, p2] = await h.signUp(env, [owner, heir, m2]);
  await h.createGroup(o, "Relay", [heir, m2]);
  await h.say(o, "passing the baton");
  await entry(p1, "Relay").waitFor();
  // The heir looks at the members while the group changes hands.
  await members(p1, "Relay");
  await p1.locator("#members-list li", { hasText: m2 }).waitFor();
  assert.equal(await p1.getByRole("button", { name: "Make owner" }).count(), 0);
  assert.ok(await p1.locator("#members-leave").isVisible(), "a member may leave");

  await o.getByRole("button", { name: "Members" }).click();
  await o.getByRole("button", { name: `Make owner: ${heir}` }).click();
  await o.locator("#members-confirm-text", { hasText: `Make ${heir} the owner?` }).waitFor();
  await h.screenshot(o, "group-owner");
  assert.deepEqual(await h.accessibility(o), [], "the hand-over question");
  await o.locator("#members-confirm").getByRole("button", { name: "Make owner", exact: true }).click();
  await o.locator("#members-status", { hasText: `${heir} is the owner now` }).waitFor();
  await o.locator("#members-list li", { hasText: `${owner} (you) · admin` }).waitFor();
  await o.locator("#members-leave").waitFor(); // an admin may leave now
  assert.equal(await o.getByRole("button", { name: /^Make owner/ }).count(), 0);

  // The heir's open dialog is drawn again with the owner's controls.
  await p1.locator("#members-list li", { hasText: `${heir} (you) · owner` }).waitFor();
  await p1.getByRole("button", { name: `Make owner: ${m2}` }).waitFor();
  await p1.getByRole("button", { name: `Make admin: ${m2}` }).waitFor();
  await p1.getByRole("button", { name: `Make member: ${owner}` }).waitFor();
  await p1.locator("#members-leave").waitFor({ state: "hidden" });
  await p1.locator("#members-close").click();
  await p1.locator("#messages li.msg.system", { hasText: "handed the group" }).waitFor();
  await closeAll([o, p1, p2]);
});

test("a muted conversation keeps its badge, drawn muted, but leaves the total", async () => {
  const [alice, bob, carol] = ["ali", "bob", "car"].map(h.uniqueName);
  const [a, b, c] = await h.signUp(env, [alice, bob, carol]);
  await h.openChatWith(a, bob);
  await h.say(a, "one");
  await entry(b, alice).click();
  await b.locator("#messages li.msg", { hasText: "one" }).waitFor();
  await entry(b, alice).locator(".badge").waitFor({ state: "detached" }); // read
  await b.getByRole("button", { name: "Mute", exact: true }).click();
  await b.getByRole("button", { name: "Unmute" }).waitFor();
  await entry(b, alice).filter({ hasText: "muted" }).waitFor();

  // Bob looks elsewhere; two messages come in the muted conversation.
  await b.getByRole("button", { name: "Home feed" }).click();
  await h.say(a, "two");
  await h.say(a, "three");
  const badge = entry(b, alice).locator(".badge.muted", { hasText: "2" });
  await badge.waitFor();
  assert.match(await badge.getAttribute("aria-label"), /2 unread.*muted/);
  await b.locator("#total-unread").waitFor({ state: "hidden" });
  assert.equal(await b.title(), "Magpie");
  // One in a conversation that is not muted: the total counts only it.
  await h.openChatWith(c, bob);
  await h.say(c, "hey bob");
  await entry(b, carol).locator(".badge", { hasText: "1" }).waitFor();
  await b.locator("#total-unread", { hasText: "1" }).waitFor();
  assert.equal(await b.title(), "(1) Magpie");
  await h.screenshot(b, "muted");

  // The mute is the server's: a reload shows it again.
  await reload(b);
  await entry(b, alice).locator(".badge.muted", { hasText: "2" }).waitFor();
  await b.locator("#total-unread", { hasText: "1" }).waitFor();
  await entry(b, alice).click();
  await b.getByRole("button", { name: "Unmute" }).click();
  await b.getByRole("button", { name: "Mute", exact: true }).waitFor();
  await entry(b, alice).filter({ hasText: "muted" }).waitFor({ state: "detached" });
  const id = await userId(b, alice);
  assert.equal((await api(b, "GET", "/v1/unread")).body.convs.find((u) => u.peer === id)?.muted, false);
  await closeAll([a, b, c]);
});

test("a block from a direct conversation's header: shown, kept, enforced on follows, undone", async () => {
  const [alice, bob] = [h.uniqueName("ali"), h.uniqueName("bob")];
  const [a, b] = await h.signUp(env, [alice, bob]);
  await h.chatting(a, bob, b, alice);
  await h.say(b, "hi alice");
  await a.locator("#messages li.msg", { hasText: "hi alice" }).waitFor();

  await a.getByRole("button", { name: `Block ${bob}` }).click();
  await a.getByRole("button", { name: `Unblock ${bob}` }).waitFor();
  await a.locator("#conv-note", { hasText: `You blocked ${bob}` }).waitFor();
  await entry(a, bob).filter({ hasText: "blocked" }).waitFor();
  await h.screenshot(a, "blocked");
  assert.deepEqual(await h.accessibility(a), [], "a blocked conversation");

  // What the server enforces: the blocked user cannot follow the blocker.
  await b.getByRole("button", { name: "Home feed" }).click();
  await b.getByLabel("Follow").fill(alice);
  await b.getByRole("button", { name: "Follow", exact: true }).click();
  await b.locator("#feed-status", { hasText: `You cannot follow ${alice}` }).waitFor();

  // Kept across a reload, and listed in the settings with Unblock.
  await reload(a);
  await entry(a, bob).filter({ hasText: "blocked" }).click();
  await a.getByRole("button", { name: `Unblock ${bob}` }).waitFor();
  await a.getByRole("button", { name: "Settings" }).click();
  await a.locator("#blocked-list li", { hasText: bob }).waitFor();
  await a.locator("#blocked-list").getByRole("button", { name: `Unblock ${bob}` }).click();
  await a.locator("#blocked-empty").waitFor();
  await a.locator("#settings-close").click();
  await a.getByRole("button", { name: `Block ${bob}` }).waitFor();
  await a.locator("#conv-note").waitFor({ state: "hidden" });

  await b.getByRole("button", { name: "Follow", exact: true }).click();
  await b.locator("#feed-status", { hasText: `You follow ${alice}` }).waitFor();
  await closeAll([a, b]);
});

test("a send the server refuses shows why, and Retry sends it once allowed", async () => {
  const [owner, m1] = [h.uniqueName("own"), h.uniqueName("mem")];
  const [o, p1] = await h.signUp(env, [owner, m1]);
  await h.createGroup(o, "Hush", [m1]);
  await h.say(o, "quiet please");
  await entry(p1, "Hush").click();
  await p1.locator("#messages li.msg", { hasText: "quiet please" }).waitFor();
  // The owner mutes the member (moderation, §3.14): their sends are refused.
  const group = (await api(o, "GET", "/v1/groups")).body.groups.find((g) => g.name === "Hush").id;
  const user = await userId(o, m1);
  const path = `/v1/groups/${group}/members/${user}`;
  assert.equal((await api(o, "PATCH", path, { muted: true })).status, 200);

  await h.say(p1, "may I speak?");
  const failed = p1.locator("#messages li.msg.failed", { hasText: "may I speak?" });
  await failed.locator(".state", { hasText: "Not sent: you cannot send to this group now" }).waitFor();
  assert.equal(await failed.locator(".state").getAttribute("role"), "alert");
  assert.equal((await api(o, "PATCH", path, { muted: false })).status, 200);
  await failed.getByRole("button", { name: "Retry" }).click();
  await p1.locator("#messages li.msg.mine", { hasText: "may I speak?" }).locator(".state", { hasText: /Sent|Read/ }).waitFor();
  await o.locator("#messages li.msg", { hasText: "may I speak?" }).waitFor();
  await closeAll([o, p1]);
});

test("settings by keyboard: appearing in search turned off stays off after a reload, the rest kept", async () => {
  const [a] = await h.signUp(env, [h.uniqueName("set")]);
  await a.getByRole("button", { name: "Settings" }).focus();
  await a.keyboard.press("Enter");
  const search = a.getByLabel("Appear in search");
  await search.waitFor();
  await a.waitForFunction(() => document.activeElement?.id === "set-search" && !document.activeElement.disabled);
  assert.ok(await search.isChecked(), "on by default");
  await a.keyboard.press("Space");
  assert.ok(!(await search.isChecked()));
  await a.getByLabel("Keep the messages I send").selectOption("days:7");
  await h.screenshot(a, "settings");
  assert.deepEqual(await h.accessibility(a), [], "the settings dialog");
  await a.getByRole("button", { name: "Save settings" }).click();
  await a.locator("#settings-status", { hasText: "Saved" }).waitFor();
  await a.keyboard.press("Escape");
  await a.locator("#settings").waitFor({ state: "hidden" });

  // The whole object was written back: the fields the page does not show
  // kept their values.
  const s = (await api(a, "GET", "/v1/settings")).body;
  const kept = { transport: "ws", search_view: true, unread_mode: "per_conversation", resend: "normal", offline_push: true };
  assert.deepEqual(s, { ...kept, search: false, persistence: "days:7" });

  await reload(a);
  await a.getByRole("button", { name: "Settings" }).click();
  await a.waitForFunction(() => !document.getElementById("set-search").disabled);
  assert.ok(!(await a.getByLabel("Appear in search").isChecked()), "still off after a reload");
  assert.ok(await a.getByLabel("Search my conversations").isChecked());
  assert.ok(await a.getByLabel("Notify me of new messages while I am offline").isChecked());
  assert.equal(await a.getByLabel("Keep the messages I send").inputValue(), "days:7");
  await closeAll([a]);
});
