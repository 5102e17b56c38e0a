// Two people chat in two browsers (docs/web.md): unread badges rise and
// clear, read state reaches the sender, a group's sender sees who read,
// history scrolls up to the first message without moving the reader, and
// a server restart loses and doubles nothing, a failed send succeeding on
// retry with its client id.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as h from "./harness.mjs";

const env = h.setup();

test("two users chat: unread badges rise and clear, the sender sees Read", async () => {
  const alice = h.uniqueName("alice");
  const bob = h.uniqueName("bob");
  const a = await h.page(env.chrome, env.server.base);
  const b = await h.page(env.chrome, env.server.base);
  await h.screenshot(a, "login");
  assert.deepEqual(await h.accessibility(a), [], "login screen");
  await h.register(a, alice);
  await h.register(b, bob);

  await h.openChatWith(a, bob);
  await h.say(a, "hello bob");
  // Bob's page received it (its socket acknowledged the push) but Bob has
  // not opened the conversation: delivered, not read.
  const mine = a.locator("#messages li.msg.mine", { hasText: "hello bob" });
  await mine.locator(".state", { hasText: "Delivered" }).waitFor();

  // Bob has not opened it: the conversation and the total show 1.
  const entry = b.locator(`#conv-list button.conv`, { hasText: alice });
  await entry.locator(".badge", { hasText: "1" }).waitFor();
  await b.locator("#total-unread", { hasText: "1" }).waitFor();
  await h.say(a, "are you there?");
  await entry.locator(".badge", { hasText: "2" }).waitFor();
  await h.screenshot(b, "conversation-list");

  await entry.click();
  await b.locator("#messages li.msg", { hasText: "are you there?" }).waitFor();
  assert.deepEqual(await h.bodies(b), ["hello bob", "are you there?"]);
  await entry.locator(".badge").waitFor({ state: "detached" });
  await b.locator("#total-unread").waitFor({ state: "hidden" });

  // The receipt reaches alice's page.
  await a.locator("#messages li.msg.mine", { hasText: "are you there?" }).locator(".state", { hasText: "Read" }).waitFor();
  await h.say(b, "hi alice, 你好");
  await a.locator("#messages li.msg", { hasText: "你好" }).waitFor();
  assert.deepEqual(await h.bodies(a), ["hello bob", "are you there?", "hi alice, 你好"]);
  await h.screenshot(a, "conversation");

  // Chinese search: 简单 inside a longer run, without spaces.
  await h.say(b, "安装简单，你好鲍勃");
  await a.locator("#messages li.msg", { hasText: "安装简单" }).waitFor();
  const hits = await h.search(a, "简单");
  assert.equal(hits.length, 1, `one hit: ${hits}`);
  assert.match(hits[0], /安装简单/);
  assert.equal(await a.locator("#search-results mark").first().textContent(), "简单");
  await a.locator("#search-results .hit").first().click();
  await a.locator("#messages li.msg.found", { hasText: "安装简单" }).waitFor();
  await h.screenshot(a, "search");
  assert.deepEqual(await h.accessibility(a), [], "conversation screen");
  assert.deepEqual([...a.errors, ...b.errors], [], "no script errors");
  await a.context().close();
  await b.context().close();
});

test("the sender's own states: Delivered, Read, Sent while the peer is away, and Read again after a reload", async () => {
  const [alice, bob] = [h.uniqueName("ali"), h.uniqueName("bob")];
  const [a, b] = await h.signUp(env, [alice, bob]);
  const state = (text) => a.locator("#messages li.msg.mine", { hasText: text }).locator(".state");
  await h.openChatWith(a, bob);
  await h.say(a, "first");
  await state("first").filter({ hasText: "Delivered" }).waitFor();
  await b.locator("#conv-list button.conv", { hasText: alice }).click();
  await state("first").filter({ hasText: "Read" }).waitFor();
  // Bob's page is gone: the next message reaches no device of his.
  await b.context().close();
  await h.say(a, "second");
  await state("second").filter({ hasText: "Sent" }).waitFor();
  await a.waitForTimeout(500);
  assert.equal(await state("second").textContent(), "Sent", "no device of Bob's got it");
  // A reload knows what Bob read from history (peer_read_seq), not from
  // the receipt the page saw.
  await a.reload();
  await a.locator("#banner").waitFor({ state: "hidden" });
  await a.locator("#conv-list button.conv", { hasText: bob }).click();
  await state("first").filter({ hasText: "Read" }).waitFor();
  assert.equal(await state("second").textContent(), "Sent");
  await a.context().close();
});

test("a group of three: the sender sees the read-by count reach two", async () => {
  const [owner, m1, m2] = [h.uniqueName("owner"), h.uniqueName("mem"), h.uniqueName("mem")];
  const pages = await h.signUp(env, [owner, m1, m2]);
  const [o, p1, p2] = pages;
  await h.createGroup(o, "Trio", [m1, m2]);
  await h.say(o, "welcome both");
  await h.say(o, "agenda follows");
  await o.locator("#messages li.msg.mine", { hasText: "agenda follows" }).locator(".state", { hasText: "Sent" }).waitFor();
  for (const p of [p1, p2]) {
    const entry = p.locator("#conv-list button.conv", { hasText: "Trio" });
    await entry.locator(".badge").waitFor();
    await entry.click();
    await p.locator("#messages li.msg", { hasText: "agenda follows" }).waitFor();
  }
  // Receipts come for the newest message read; the earlier one is read too.
  await o.locator("#messages li.msg.mine", { hasText: "agenda follows" }).locator(".state", { hasText: "Read by 2" }).waitFor({ timeout: 20_000 });
  const state = o.locator("#messages li.msg.mine", { hasText: "welcome both" }).locator(".state");
  await state.filter({ hasText: "Read by 2" }).waitFor();
  await state.click();
  await o.locator("#readers-list li", { hasText: m2 }).waitFor();
  assert.equal(await o.locator("#readers-list li").count(), 2);
  await h.screenshot(o, "group-read-by");
  for (const p of pages) await p.context().close();
});

test("history scrolls up to the first message and keeps the reader's place", async () => {
  const alice = h.uniqueName("hist");
  const bob = h.uniqueName("hist");
  const a = await h.page(env.chrome, env.server.base);
  await h.register(a, alice);
  const b = await h.page(env.chrome, env.server.base, { width: 400, height: 600 });
  await h.register(b, bob);
  // 75 messages over HTTP as alice, with the page's own token.
  await a.evaluate(
    async ({ bob, n }) => {
      const s = JSON.parse(sessionStorage.getItem("magpie.session"));
      const auth = { authorization: `Bearer ${s.access_token}`, "content-type": "application/json" };
      const u = await (await fetch(`/v1/users?name=${bob}`, { headers: auth })).json();
      for (let i = 1; i <= n; i++) {
        const r = await fetch("/v1/messages", {
          method: "POST",
          headers: auth,
          body: JSON.stringify({ to: u.id, cmid: crypto.randomUUID(), body: `m${i}` }),
        });
        if (!r.ok) throw new Error(await r.text());
      }
    },
    { bob, n: 75 },
  );
  // A reload: the page keeps its session but holds no message, so the
  // conversation's history comes page by page from the server.
  await b.reload();
  await b.locator("#banner").waitFor({ state: "hidden" });
  const entry = b.locator("#conv-list button.conv", { hasText: alice });
  await entry.locator(".badge", { hasText: "75" }).waitFor();
  await entry.click();
  await b.locator("#messages li.msg", { hasText: "m75" }).waitFor();
  const list = b.locator("#messages");
  // Scroll to the top until the first message. Each older page goes above
  // the message that was at the top, which must not move on the screen.
  let pages = 0;
  for (; pages < 10; pages++) {
    if (await b.locator("#messages li[data-first]").count()) break;
    const [topSeq, y0] = await list.evaluate((ol) => {
      ol.scrollTop = 0;
      const li = ol.querySelector("li.msg");
      return [li.dataset.seq, li.getBoundingClientRect().top - ol.getBoundingClientRect().top];
    });
    await b.waitForFunction(
      (seq) =>
        document.querySelector("#messages li.msg")?.dataset.seq !== seq ||
        document.querySelector("#messages li[data-first]"),
      topSeq,
    );
    // Found and measured in one step: a redraw between the two (a receipt,
    // the next page) would leave a detached element, whose box is all 0.
    // Measured from the list's top, as above: the header may wrap
    // differently meanwhile (its buttons come with the conversation's
    // state), which moves the whole list, not the reader's place in it.
    const y1 = await b.evaluate((seq) => {
      const ol = document.querySelector("#messages");
      const li = ol.querySelector(`li.msg[data-seq="${seq}"]`);
      return li.getBoundingClientRect().top - ol.getBoundingClientRect().top;
    }, topSeq);
    assert.ok(Math.abs(y1 - y0) < 5, `message ${topSeq} moved from ${y0} to ${y1} when an older page came`);
  }
  assert.ok(pages >= 2, `history came in ${pages} pages`);
  const shown = await h.bodies(b);
  assert.deepEqual(shown, Array.from({ length: 75 }, (_, i) => `m${i + 1}`));
  await h.screenshot(b, "history-phone");
  await a.context().close();
  await b.context().close();
});

test("a server restart: the page reconnects, a failed send succeeds on retry, nothing lost or doubled", async () => {
  const alice = h.uniqueName("rs");
  const bob = h.uniqueName("rs");
  const [a, b] = await h.signUp(env, [alice, bob]);
  await h.chatting(a, bob, b, alice);
  await h.say(a, "before restart");
  await b.locator("#messages li.msg", { hasText: "before restart" }).waitFor();

  await env.server.stop();
  await a.locator("#banner", { hasText: "Reconnecting" }).waitFor();
  await h.say(a, "while down");
  const failed = a.locator("#messages li.msg.failed", { hasText: "while down" });
  await failed.getByRole("button", { name: "Retry" }).waitFor();
  const cmid = await failed.getAttribute("data-cmid");
  await h.screenshot(a, "send-failed");

  await env.server.start();
  await a.locator("#banner").waitFor({ state: "hidden", timeout: 30_000 });
  await b.locator("#banner").waitFor({ state: "hidden", timeout: 30_000 });
  await failed.getByRole("button", { name: "Retry" }).click();
  const sent = a.locator("#messages li.msg.mine", { hasText: "while down" });
  await sent.locator(".state", { hasText: /Sent|Read/ }).waitFor();
  assert.equal(await sent.getAttribute("data-cmid"), cmid, "the retry kept its client id");
  await h.say(b, "after restart");
  await a.locator("#messages li.msg", { hasText: "after restart" }).waitFor();
  await b.locator("#messages li.msg", { hasText: "while down" }).waitFor();
  const expected = ["before restart", "while down", "after restart"];
  assert.deepEqual(await h.bodies(a), expected);
  assert.deepEqual(await h.bodies(b), expected);
  await a.context().close();
  await b.context().close();
});
