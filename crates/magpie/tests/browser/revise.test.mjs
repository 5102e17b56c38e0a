// Replies, edits, recalls and mentions in the web client (docs/web.md;
// docs/protocol.md §5.10, §5.11): what one page does, the other shows.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as h from "./harness.mjs";

const env = h.setup();

const row = (p, text) => p.locator("#messages li.msg", { hasText: text });

test("a reply, an edit and a recall reach the other page", async () => {
  const alice = h.uniqueName("ann");
  const bob = h.uniqueName("ben");
  const [a, b] = await h.signUp(env, [alice, bob]);
  await h.chatting(a, bob, b, alice);
  await h.say(a, "lunch at noon?");
  await h.say(a, "wrong chat, sorry");
  await row(b, "wrong chat").waitFor();

  await row(b, "lunch at noon?").getByRole("button", { name: "Reply" }).click();
  await b.locator("#compose-context", { hasText: "Replying to" }).waitFor();
  await h.say(b, "yes please");
  await row(a, "yes please").locator(".quote", { hasText: "lunch at noon?" }).waitFor();

  await row(a, "lunch at noon?").getByRole("button", { name: "Edit" }).click();
  await a.getByLabel("Message", { exact: true }).fill("lunch at one?");
  await a.getByRole("button", { name: "Send" }).click();
  await row(b, "lunch at one?").locator(".edited").waitFor();

  await row(a, "wrong chat, sorry").getByRole("button", { name: "Recall" }).click();
  await b.locator("#messages li.msg .recalled", { hasText: "recalled" }).waitFor();
  assert.equal(await row(b, "wrong chat").count(), 0, "the recalled text is gone");
  // The events show on the messages they change, not as messages.
  assert.deepEqual(await h.bodies(b), ["lunch at one?", "This message was recalled", "yes please"]);

  // A page that was not open when they happened gets them as history.
  await b.reload();
  await b.locator("#banner").waitFor({ state: "hidden" });
  const entry = b.locator("#conv-list button.conv", { hasText: alice });
  await entry.click();
  await row(b, "yes please").waitFor();
  await entry.locator(".badge").waitFor({ state: "detached" });
  assert.deepEqual(await h.bodies(b), ["lunch at one?", "This message was recalled", "yes please"]);
  await h.screenshot(b, "revisions");
  await a.context().close();
  await b.context().close();
});

test("a mention shows on the mentioned member's conversation, not on the others'", async () => {
  const [owner, m1, m2] = [h.uniqueName("own"), h.uniqueName("mia"), h.uniqueName("max")];
  const pages = await h.signUp(env, [owner, m1, m2]);
  const [o, p1, p2] = pages;
  await h.createGroup(o, "Planning", [m1, m2]);
  await h.say(o, `@${m1} can you take notes?`);
  await row(o, "take notes").locator(".state").waitFor();
  const mentioned = p1.locator("#conv-list button.conv", { hasText: "Planning" }).locator(".badge");
  await mentioned.filter({ hasText: "@" }).waitFor();
  assert.match(await mentioned.getAttribute("aria-label"), /mentioning you/);
  const other = p2.locator("#conv-list button.conv", { hasText: "Planning" }).locator(".badge");
  await other.waitFor();
  assert.doesNotMatch(await other.textContent(), /@/);
  await p1.locator("#conv-list button.conv", { hasText: "Planning" }).click();
  await row(p1, "take notes").and(p1.locator("li.mention")).waitFor();
  await mentioned.waitFor({ state: "detached" });
  assert.deepEqual(await h.accessibility(p1), [], "a group conversation");
  for (const p of pages) await p.context().close();
});
