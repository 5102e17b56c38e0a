// Group administration and profiles in the web client (docs/web.md;
// docs/protocol.md §3.14, §3.18): add a member by name, change a role, leave;
// a display name set by one user is what the others see.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as h from "./harness.mjs";

const env = h.setup();

const members = (p) => p.locator("#members-list li").allTextContents();

test("the owner adds a member and makes another admin; a member leaves; names follow profiles", async () => {
  const [owner, m1, m2, m3] = [h.uniqueName("boss"), h.uniqueName("mia"), h.uniqueName("moe"), h.uniqueName("new")];
  const [o, p1, p2, p3] = await h.signUp(env, [owner, m1, m2, m3]);
  await h.createGroup(o, "Crew", [m1, m2]);
  await h.say(o, "hello crew");

  await o.getByRole("button", { name: "Members" }).click();
  await o.locator("#members-list li", { hasText: m2 }).waitFor();
  assert.equal((await members(o)).length, 3);
  await o.getByLabel("Add", { exact: true }).fill(m3);
  await o.locator("#members-add").getByRole("button", { name: "Add" }).click();
  await o.locator("#members-list li", { hasText: m3 }).waitFor();
  // The new member's page learns of the group (its member events).
  await p3.locator("#conv-list button.conv", { hasText: "Crew" }).waitFor();

  await o.getByRole("button", { name: `Make admin: ${m1}` }).click();
  await o.locator("#members-list li", { hasText: m1 }).filter({ hasText: "admin" }).waitFor();
  await h.screenshot(o, "group-members");
  assert.deepEqual(await h.accessibility(o), [], "the members dialog");
  await o.getByRole("button", { name: "Close" }).first().click();

  // The plain member leaves: the group goes from their list.
  await p2.locator("#conv-list button.conv", { hasText: "Crew" }).click();
  await p2.getByRole("button", { name: "Members" }).click();
  await p2.locator("#members-list li", { hasText: owner }).waitFor();
  await p2.getByRole("button", { name: "Leave group" }).click();
  await p2.locator("#conv-list button.conv", { hasText: "Crew" }).waitFor({ state: "detached" });

  // The admin sets a display name; the owner's page shows it once it
  // looks the user up again (a reload).
  await p1.getByRole("button", { name: "Profile" }).click();
  await p1.getByLabel("Display name").fill("Mia the Admin");
  await p1.getByRole("button", { name: "Save" }).click();
  await p1.locator("#profile-status", { hasText: "Saved" }).waitFor();
  await o.reload();
  await o.locator("#banner").waitFor({ state: "hidden" });
  await o.locator("#conv-list button.conv", { hasText: "Crew" }).click();
  await o.getByRole("button", { name: "Members" }).click();
  await o.locator("#members-list li", { hasText: "Mia the Admin" }).waitFor();
  const list = await members(o);
  assert.equal(list.length, 3, `${list}`);
  assert.ok(!list.some((l) => l.includes(m2)), "the member who left is gone");
  for (const p of [o, p1, p2, p3]) await p.context().close();
});
