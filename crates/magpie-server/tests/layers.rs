//! The import direction of the server crate (ARCHITECTURE.md, "Layers"):
//! the ways in (`edge`, `conn`, `workers`, `cluster`) call the services;
//! the services never reach back up, answer with domain types, and name no
//! concrete backend. Checked on the source text, so a violation fails CI
//! before anyone has to notice it in review.

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every line of the files under `src/<folder>` that contains one of
/// `forbidden`, skipping comments (they may name what they must not use).
fn offenders(folder: &str, forbidden: &[&str], except: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src.join(folder), &mut files);
    assert!(!files.is_empty(), "no sources under src/{folder}");
    let mut found = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if except.iter().any(|e| rel.starts_with(e)) {
            continue;
        }
        let text = fs::read_to_string(&file).expect("readable source file");
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for f in forbidden {
                if code.contains(f) {
                    found.push(format!("src/{rel}:{}: {f}", n + 1));
                }
            }
        }
    }
    found
}

const WAYS_IN: &[&str] = &["crate::conn", "crate::edge", "axum"];
const BACKENDS: &[&str] = &[
    "Sqlite",
    "sqlite::",
    "Redis",
    "redis::",
    "Jetstream",
    "JetStream",
    "Embedded",
    "MemStore",
    "MemState",
    "sqlx",
    "async_nats",
];

#[test]
fn services_never_reach_the_ways_in_nor_a_backend() {
    let mut bad = offenders("services", WAYS_IN, &[]);
    bad.extend(offenders("services", BACKENDS, &[]));
    assert!(
        bad.is_empty(),
        "services must not import these:\n{}",
        bad.join("\n")
    );
}

#[test]
fn only_delivery_writes_wire_frames() {
    let bad = offenders("services", &["magpie_proto"], &["services/delivery/"]);
    assert!(
        bad.is_empty(),
        "services answer with domain types:\n{}",
        bad.join("\n")
    );
}

#[test]
fn workers_and_cluster_never_reach_the_ways_in_nor_a_backend() {
    for folder in ["workers", "cluster"] {
        let mut bad = offenders(folder, WAYS_IN, &[]);
        bad.extend(offenders(folder, BACKENDS, &[]));
        assert!(
            bad.is_empty(),
            "{folder} must not import these:\n{}",
            bad.join("\n")
        );
    }
}
