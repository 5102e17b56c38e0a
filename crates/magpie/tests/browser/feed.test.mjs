// Follows and the home feed in the web client (docs/web.md, docs/feeds.md).

import { test } from "node:test";
import assert from "node:assert/strict";
import * as h from "./harness.mjs";

const env = h.setup();

test("a follower reads the posts of those they follow, newest first", async () => {
  const author = h.uniqueName("writer");
  const reader = h.uniqueName("reader");
  const a = await h.page(env.chrome, env.server.base);
  const r = await h.page(env.chrome, env.server.base);
  await h.register(a, author);
  await h.register(r, reader);

  await a.getByRole("button", { name: "Home feed" }).click();
  await a.getByLabel("New post").fill("before the follow");
  await a.getByRole("button", { name: "Publish" }).click();
  await a.locator("#posts li.post", { hasText: "before the follow" }).waitFor();

  await r.getByRole("button", { name: "Home feed" }).click();
  await r.locator("#feed-empty").waitFor();
  await r.getByLabel("Follow", { exact: true }).fill(author);
  await r.getByRole("button", { name: "Follow", exact: true }).click();
  await r.locator("#feed-status", { hasText: `You follow ${author}` }).waitFor();
  // Older posts of a newly followed author are there (docs/feeds.md).
  await r.locator("#posts li.post", { hasText: "before the follow" }).waitFor();

  await a.getByLabel("New post").fill("after the follow");
  await a.getByRole("button", { name: "Publish" }).click();
  // Pushed to the open feed; a push is best effort, the feed read is the
  // truth: read it again if the push has not come within 5 s.
  const fresh = r.locator("#posts li.post", { hasText: "after the follow" });
  try {
    await fresh.waitFor({ timeout: 5_000 });
  } catch {
    await r.getByRole("button", { name: "Home feed" }).click();
    await fresh.waitFor();
  }
  const shown = await r.locator("#posts li.post .body").allTextContents();
  assert.deepEqual(shown, ["after the follow", "before the follow"]);
  assert.equal(await r.locator("#posts li.post .who").first().textContent(), author);
  await h.screenshot(r, "feed");
  assert.deepEqual(await h.accessibility(r), [], "the feed screen");

  // The author's own feed shows their posts too.
  await a.getByRole("button", { name: "Home feed" }).click();
  await a.locator("#posts li.post", { hasText: "after the follow" }).waitFor();
  assert.equal(await a.locator("#posts li.post").count(), 2);

  // The author deletes a post: it leaves the feed.
  await a.locator("#posts li.post", { hasText: "before the follow" }).getByRole("button", { name: "Delete" }).click();
  await a.locator("#posts li.post", { hasText: "before the follow" }).waitFor({ state: "detached" });
  await r.getByRole("button", { name: "Home feed" }).click();
  await r.locator("#posts li.post", { hasText: "before the follow" }).waitFor({ state: "detached" });
  assert.deepEqual(await r.locator("#posts li.post .body").allTextContents(), ["after the follow"]);
  await a.context().close();
  await r.context().close();
});
