// The operator console (docs/web.md, "Operator console"), on the internal
// listener: a wrong key refused, the node and its connections shown, an
// address banned and the ban lifted, a message traced through its hops, an
// ordering-chain gap listed among the alarms, the node drained (the chat
// pages reconnect) and the drain ended.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as h from "./harness.mjs";

const env = h.setup();

test("the console logs in, shows the node and its connections, bans and lifts, traces", async () => {
  const alice = h.uniqueName("op");
  const bob = h.uniqueName("op");
  const a = await h.page(env.chrome, env.server.base);
  const b = await h.page(env.chrome, env.server.base);
  await h.register(a, alice);
  await h.register(b, bob);
  // A message to trace, sent over HTTP with alice's token: its server id.
  const sid = await a.evaluate(async (bob) => {
    const s = JSON.parse(sessionStorage.getItem("magpie.session"));
    const auth = { authorization: `Bearer ${s.access_token}`, "content-type": "application/json" };
    const u = await (await fetch(`/v1/users?name=${bob}`, { headers: auth })).json();
    const r = await fetch("/v1/messages", {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ to: u.id, cmid: crypto.randomUUID(), body: "trace me" }),
    });
    return (await r.json()).server_id;
  }, bob);
  assert.match(sid, /^[0-9]+$/);

  // The console is on the internal listener only.
  const pub = await fetch(`${env.server.base}/console`);
  assert.equal(pub.status, 404, "no console on the public address");
  const c = await h.page(env.chrome, env.server.internal, undefined, "/console");
  await c.getByLabel("Service key").fill("not the key");
  await c.getByRole("button", { name: "Log in" }).click();
  await c.locator("#login-error", { hasText: "Wrong key" }).waitFor();
  await h.screenshot(c, "console-login");
  assert.deepEqual(await h.accessibility(c), [], "console login");
  await c.getByLabel("Service key").fill(env.server.serviceKey);
  await c.getByRole("button", { name: "Log in" }).click();

  await c.locator("#nodes tr", { hasText: "(this one)" }).waitFor();
  // The cluster view: every node's row (here the one node), from the survey.
  const here = (await c.locator("#here").textContent()).replace("node ", "");
  await c.locator("#cluster tr", { hasText: here }).waitFor();
  // Two pages hold a WebSocket each.
  await c.waitForFunction(() => {
    const dt = [...document.querySelectorAll("#stats dt")].find((d) => d.textContent === "WebSocket connections");
    return dt && Number(dt.nextElementSibling.textContent) >= 2;
  });

  await c.getByLabel("Value").fill("198.51.100.7");
  await c.getByLabel("Reason").fill("console test");
  await c.getByRole("button", { name: "Ban", exact: true }).click();
  const ban = c.locator("#bans tr", { hasText: "198.51.100.7" });
  await ban.filter({ hasText: "console test" }).waitFor();
  const listed = await (await fetch(`${env.server.internal}/internal/v1/bans`, { headers: { authorization: `Bearer ${env.server.serviceKey}` } })).json();
  assert.ok(listed.some((d) => d.value === "198.51.100.7"), "the ban is in force");
  await ban.getByRole("button", { name: /Lift/ }).click();
  await ban.waitFor({ state: "detached" });

  await c.getByLabel("Server id").fill(sid);
  await c.getByRole("button", { name: "Trace" }).click();
  await c.locator("#hops tr", { hasText: "accepted" }).waitFor();
  await c.locator("#hops tr", { hasText: "durable" }).waitFor();

  // A chained send whose predecessor never comes: after chain.wait_ms, the
  // gap alarm is listed.
  await c.locator("#alarms-empty").waitFor();
  const gap = await a.evaluate(async (bob) => {
    const s = JSON.parse(sessionStorage.getItem("magpie.session"));
    const auth = { authorization: `Bearer ${s.access_token}`, "content-type": "application/json" };
    const u = await (await fetch(`/v1/users?name=${bob}`, { headers: auth })).json();
    const { next } = await (await fetch("/v1/chain", { headers: auth })).json();
    const send = (id, nextId) =>
      fetch("/v1/messages", {
        method: "POST",
        headers: auth,
        body: JSON.stringify({ to: u.id, cmid: crypto.randomUUID(), body: id, chain: { id, next: nextId } }),
      });
    await send(next, "link-1");
    return (await send("link-2", "link-3")).status;
  }, bob);
  assert.equal(gap, 200, "skipped past the gap");
  await c.locator("#alarms tr", { hasText: "chain gap" }).filter({ hasText: "link-1" }).waitFor();
  await h.screenshot(c, "console");
  assert.deepEqual(await h.accessibility(c), [], "console");

  // Drain: both chat pages are told to reconnect; with no other node they
  // come back here. Then the drain ends.
  await c.getByRole("button", { name: `Drain ${here}` }).click();
  await c.locator("#drain-status", { hasText: new RegExp(`${here} drains: [2-9] connections`) }).waitFor();
  await c.locator("#nodes tr", { hasText: "(this one)" }).filter({ hasText: "draining" }).waitFor();
  await c.locator("#cluster tr", { hasText: "draining" }).waitFor();
  for (const p of [a, b]) await p.locator("#banner", { hasText: "Reconnecting" }).waitFor();
  for (const p of [a, b]) await p.locator("#banner").waitFor({ state: "hidden", timeout: 15000 });
  await c.getByRole("button", { name: `End the drain of ${here}` }).click();
  await c.locator("#nodes tr", { hasText: "(this one)" }).filter({ hasText: "serving" }).waitFor();
  for (const p of [a, b, c]) await p.context().close();
});
