// What every browser test needs (docs/web.md, "Tests"): a `magpie serve`
// of its own (embedded, a fresh data directory, any free port, restartable
// on the same port), Debian's chromium driven by playwright-core, users made
// through the page, screenshots and the accessibility check.
//
// Environment (set by crates/magpie/tests/browser.rs from scripts/services.sh):
// MAGPIE_TEST_SERVER_BIN, MAGPIE_TEST_BROWSER_MODULES (node_modules with playwright-core
// and axe-core), MAGPIE_TEST_CHROMIUM, MAGPIE_TEST_SCREENSHOTS; for
// developing the page, MAGPIE_TEST_WEB_DIR (its files from disk).

import { spawn } from "node:child_process";
import { before, after } from "node:test";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const need = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests through cargo test (crates/magpie/tests/browser.rs)`);
  return v;
};

const modules = need("MAGPIE_TEST_BROWSER_MODULES");
const require = createRequire(join(modules, "x.js"));
export const { chromium } = require("playwright-core");
const AXE = require.resolve("axe-core/axe.min.js");

/// Waits for the listening line `magpie serve` prints (crates/magpie/src/main.rs).
function listening(proc) {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout });
    let err = "";
    proc.stderr.on("data", (d) => {
      if (err.length < 4000) err += d; // the first lines say why
    });
    lines.on("line", (l) => {
      try {
        const v = JSON.parse(l);
        if (v.event === "listening") resolve(v);
      } catch {
        /* a log line */
      }
    });
    proc.on("exit", (code) => reject(new Error(`magpie serve exited (${code}): ${err}`)));
  });
}

export class Server {
  /// `config`: more `MAGPIE_*` settings for this server (docs/config.md).
  constructor(config = {}) {
    this.config = config;
    this.dir = mkdtempSync(join(tmpdir(), "magpie-browser-"));
    this.listen = "127.0.0.1:0";
    this.internalListen = "127.0.0.1:0";
    // The internal API (and the console) is served only with a key.
    this.serviceKey = `console-key-${process.pid}-${Date.now()}`;
    this.proc = null;
  }

  async start() {
    this.proc = spawn(
      need("MAGPIE_TEST_SERVER_BIN"),
      [
        "serve",
        "--data-dir",
        this.dir,
        "--http-listen",
        this.listen,
        "--tcp-listen",
        "127.0.0.1:0",
        "--internal-listen",
        this.internalListen,
        "--shutdown-grace-ms",
        "1000",
      ],
      {
        // Only what it needs: every `MAGPIE_*` variable is configuration
        // to the server (docs/config.md), and unknown keys are refused.
        env: {
          PATH: process.env.PATH,
          MAGPIE_AUTH__ARGON2_M_KIB: "64",
          MAGPIE_AUTH__ARGON2_T: "1",
          MAGPIE_INTERNAL__SERVICE_KEY: this.serviceKey,
          MAGPIE_LOG: "warn",
          ...this.config,
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    const v = await listening(this.proc);
    this.listen = v.http; // a restart comes back on the same ports
    this.internalListen = v.internal;
    this.base = `http://${v.http}`;
    this.internal = `http://${v.internal}`;
    return this;
  }

  /// SIGTERM, as an operator's restart does; resolves once it exited.
  async stop() {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    await exited;
  }

  async close() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/// One server and one browser for a test file: started before its tests,
/// stopped after them. The returned object holds `server` and `chrome`.
export function setup(config = {}) {
  const env = {};
  before(async () => {
    env.server = await new Server(config).start();
    env.chrome = await browser();
  });
  after(async () => {
    await env.chrome?.close();
    await env.server?.close();
  });
  return env;
}

export async function browser() {
  return chromium.launch({
    executablePath: need("MAGPIE_TEST_CHROMIUM"),
    // A page fulfilled from disk (MAGPIE_TEST_WEB_DIR) has no address of
    // its own, and Chromium would block its socket to loopback.
    args: ["--no-sandbox", "--disable-dev-shm-usage"].concat(
      process.env.MAGPIE_TEST_WEB_DIR ? ["--disable-features=LocalNetworkAccessChecks"] : [],
    ),
  });
}

/// A page of its own (a context: its own storage, like another person's
/// browser). CSP is bypassed only so the accessibility checker can be
/// injected; the page's own code runs under the server's policy otherwise.
export async function page(b, base, viewport = { width: 1100, height: 720 }, path = "/") {
  const ctx = await b.newContext({ baseURL: base, bypassCSP: true, viewport });
  const p = await ctx.newPage();
  const dev = process.env.MAGPIE_TEST_WEB_DIR;
  if (dev) {
    // Developing the page: its files from this directory, not the ones
    // built into the server (no rebuild per change). Never set in CI.
    const { readFileSync } = await import("node:fs");
    await p.route(/\/((web|console)\/[a-z]+\.(js|css)|console)?$/, async (route) => {
      const at = new URL(route.request().url()).pathname;
      const name = at === "/" ? "index.html" : at === "/console" ? "console.html" : at.split("/").pop();
      const type = name.endsWith(".css") ? "text/css" : name.endsWith(".js") ? "text/javascript" : "text/html";
      await route.fulfill({ body: readFileSync(join(dev, name), "utf8"), contentType: type });
    });
  }
  p.setDefaultTimeout(15_000);
  const errors = [];
  p.on("pageerror", (e) => errors.push(String(e)));
  p.errors = errors;
  await p.goto(path);
  return p;
}

let counter = 0;
export function uniqueName(prefix) {
  counter += 1;
  return `${prefix}${process.pid % 10000}${counter}${Math.floor(Math.random() * 1000)}`;
}

export async function register(p, username, password = "password123") {
  await p.getByLabel("Username", { exact: true }).fill(username);
  await p.getByLabel("Password", { exact: true }).fill(password);
  await p.getByRole("button", { name: "Register" }).click();
  await p.locator("#me").filter({ hasText: username }).waitFor();
  await p.locator("#banner").waitFor({ state: "hidden" });
}

export async function openChatWith(p, username) {
  await p.getByLabel("Chat with").fill(username);
  await p.getByRole("button", { name: "Start" }).click();
  await p.locator("#conv-title").filter({ hasText: username }).waitFor();
}

export async function say(p, text) {
  await p.getByLabel("Message", { exact: true }).fill(text);
  await p.getByRole("button", { name: "Send" }).click();
}

/// A page per name, each registered and logged in.
export async function signUp(env, names) {
  const pages = [];
  for (const name of names) {
    const p = await page(env.chrome, env.server.base);
    await register(p, name);
    pages.push(p);
  }
  return pages;
}

/// Two pages with each other's conversation open.
export async function chatting(a, bobName, b, aliceName) {
  await openChatWith(a, bobName);
  await openChatWith(b, aliceName);
}

/// Creates a group from the page's form; the group's conversation opens.
export async function createGroup(p, name, members) {
  await p.getByText("New group").click();
  await p.getByLabel("Group name").fill(name);
  await p.getByLabel("Members (usernames)").fill(members.join(", "));
  await p.getByRole("button", { name: "Create" }).click();
  await p.locator("#conv-title", { hasText: name }).waitFor();
}

/// Searches until a hit shows (a message is searchable about
/// `search.commit_ms` after it was sent, docs/search.md); the hits' texts.
export async function search(p, text) {
  for (let i = 0; i < 30; i++) {
    await p.getByLabel("Search messages").fill(text);
    await p.getByRole("button", { name: "Search", exact: true }).click();
    await p.locator("#search-status").filter({ hasText: /found|failed|No messages/ }).waitFor();
    const hits = await p.locator("#search-results .hit").allTextContents();
    if (hits.length) return hits;
    await p.waitForTimeout(500);
  }
  return [];
}

/// The message rows of the open conversation, in the order shown.
export async function bodies(p) {
  return p.locator("#messages li.msg .body").allTextContents();
}

export function shotsDir() {
  const d = process.env.MAGPIE_TEST_SCREENSHOTS || join(tmpdir(), "magpie-screenshots");
  mkdirSync(d, { recursive: true });
  return d;
}

export async function screenshot(p, name) {
  await p.screenshot({ path: join(shotsDir(), `${name}.png`) });
}

/// axe-core's serious and critical violations on the page as it is now.
export async function accessibility(p) {
  await p.addScriptTag({ path: AXE });
  const r = await p.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const res = await axe.run(document, { resultTypes: ["violations"] });
    return res.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")) }));
  });
  return r.filter((v) => v.impact === "serious" || v.impact === "critical");
}
