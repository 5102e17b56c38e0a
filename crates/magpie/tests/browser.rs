//! The web client (docs/web.md) in a real browser: node's test runner runs
//! `tests/browser/*.test.mjs`, which start `magpie serve` (this crate's
//! binary, embedded backends, a fresh data directory each) and drive
//! Debian's chromium with playwright-core, two or three people at once.
//! Screenshots of each main screen go to `$CARGO_TARGET_DIR/browser-screenshots`.
//!
//! Runs once, in the embedded phase: the page speaks only the public
//! protocol, which every backend set answers alike (the cluster phases
//! test that protocol black-box already).
//!
//! Needs `MAGPIE_TEST_CHROMIUM` and `MAGPIE_TEST_BROWSER_MODULES` (exported
//! by `scripts/services.sh start`); with `CI` set, missing ones fail.

mod common;

use common::{backends, tool};
use std::path::Path;
use std::process::Command;

#[test]
fn the_web_client_works_in_chromium() {
    if backends::cluster_mode() {
        return;
    }
    let (Some(chromium), Some(modules)) = (
        tool("MAGPIE_TEST_CHROMIUM"),
        tool("MAGPIE_TEST_BROWSER_MODULES"),
    ) else {
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let target =
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "/var/tmp/magpie-target".into());
    let out = Command::new(std::env::var("MAGPIE_TEST_NODE").unwrap_or_else(|_| "node".into()))
        .arg("--test")
        .arg("--test-concurrency=1")
        .arg(dir.join("chat.test.mjs"))
        .arg(dir.join("revise.test.mjs"))
        .arg(dir.join("feed.test.mjs"))
        .arg(dir.join("console.test.mjs"))
        .arg(dir.join("session.test.mjs"))
        .arg(dir.join("admin.test.mjs"))
        .arg(dir.join("manage.test.mjs"))
        .env("MAGPIE_TEST_SERVER_BIN", env!("CARGO_BIN_EXE_magpie"))
        .env("MAGPIE_TEST_CHROMIUM", chromium)
        .env("MAGPIE_TEST_BROWSER_MODULES", modules)
        .env(
            "MAGPIE_TEST_SCREENSHOTS",
            Path::new(&target).join("browser-screenshots"),
        )
        .output()
        .expect("run node (Debian's nodejs: scripts/services.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "browser tests failed:\n{text}");
    println!("{text}");
}
