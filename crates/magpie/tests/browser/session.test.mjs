// The login session of a tab (docs/web.md, api.js): renewed before the
// access token expires, kept across a reload, ended by logging out; two
// tabs of one browser can be two users.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as h from "./harness.mjs";

// Access tokens of 66 s: the page renews a minute before expiry, so after
// about 6 s (docs/config.md, auth.access_ttl_secs).
const env = h.setup({ MAGPIE_AUTH__ACCESS_TTL_SECS: "66" });

const token = (p) => p.evaluate(() => JSON.parse(sessionStorage.getItem("magpie.session") || "null")?.access_token);

test("the access token is renewed before it expires and the session survives a reload", async () => {
  const [a] = await h.signUp(env, [h.uniqueName("tok")]);
  const first = await token(a);
  await a.waitForFunction((t) => JSON.parse(sessionStorage.getItem("magpie.session")).access_token !== t, first, {
    timeout: 20_000,
  });
  const renewed = await token(a);
  // The renewed token works: the page's next call (a look-up) succeeds.
  const status = await a.evaluate(async (t) => (await fetch("/v1/unread", { headers: { authorization: `Bearer ${t}` } })).status, renewed);
  assert.equal(status, 200);

  await a.reload();
  await a.locator("#chat").waitFor();
  await a.locator("#banner").waitFor({ state: "hidden" });
  await a.getByRole("button", { name: "Log out" }).click();
  await a.getByLabel("Username", { exact: true }).waitFor();
  assert.equal(await token(a), undefined, "logged out: nothing kept");
  await a.context().close();
});

test("two tabs of one browser are two users at once", async () => {
  const ctx = await env.chrome.newContext({ baseURL: env.server.base });
  const [n1, n2] = [h.uniqueName("tab"), h.uniqueName("tab")];
  const t1 = await ctx.newPage();
  const t2 = await ctx.newPage();
  await t1.goto("/");
  await t2.goto("/");
  await h.register(t1, n1);
  await h.register(t2, n2);
  await h.chatting(t1, n2, t2, n1);
  await h.say(t1, "from the first tab");
  await t2.locator("#messages li.msg", { hasText: "from the first tab" }).waitFor();
  assert.equal(await t1.locator("#me").textContent(), n1);
  assert.equal(await t2.locator("#me").textContent(), n2);
  await ctx.close();
});
