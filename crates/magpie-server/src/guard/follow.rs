//! Following a gateway's access log (nginx combined, APISIX JSON lines):
//! new lines are parsed into access events and sent to the detector like
//! this node's own (`access.rs`), so the same rules ban an address that
//! only the gateway saw.
//!
//! Like `tail -F`: it starts at the end of the file (history is not
//! replayed on start), polls every 250 ms, reads only complete lines,
//! and starts over from the beginning when the file was replaced
//! (another inode: rotation) or shrank (truncation). A missing file is
//! waited for. A line that does not parse is counted and skipped.

use super::access::AccessSink;
use magpie_core::access::LogFormat;
use std::io::SeekFrom;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::sync::CancellationToken;

const POLL: Duration = Duration::from_millis(250);
/// Read at most this much per poll (a burst is taken over several).
const CHUNK: usize = 1 << 20;
/// A "line" longer than this is not a log line: it is dropped.
const MAX_LINE: usize = 64 * 1024;

pub async fn follow(path: String, format: LogFormat, sink: AccessSink, stop: CancellationToken) {
    let mut pos: Option<(u64, u64)> = None; // (inode, offset)
    let mut partial: Vec<u8> = Vec::new();
    let mut skipped = 0u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.cancelled() => return,
        }
        let Ok(meta) = tokio::fs::metadata(&path).await else {
            continue;
        };
        let inode = inode_of(&meta);
        let len = meta.len();
        let offset = match pos {
            // First sight: from the end.
            None => len,
            Some((ino, off)) if ino == inode && off <= len => off,
            // Rotated or truncated: the new file from its start.
            Some(_) => {
                partial.clear();
                0
            }
        };
        pos = Some((inode, offset));
        if offset == len {
            continue;
        }
        let Ok(mut f) = tokio::fs::File::open(&path).await else {
            continue;
        };
        if f.seek(SeekFrom::Start(offset)).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; CHUNK.min((len - offset) as usize)];
        let Ok(n) = f.read(&mut buf).await else {
            continue;
        };
        buf.truncate(n);
        pos = Some((inode, offset + n as u64));
        partial.extend_from_slice(&buf);
        let Some(end) = partial.iter().rposition(|b| *b == b'\n') else {
            if partial.len() > MAX_LINE {
                partial.clear();
            }
            continue;
        };
        let rest = partial.split_off(end + 1);
        for line in partial.split(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(line);
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            match format.parse(line) {
                Ok(e) => sink.relay_only(e),
                Err(e) => {
                    skipped += 1;
                    if skipped.is_power_of_two() {
                        tracing::warn!(%path, error = %e, skipped, "unparsable access log line");
                    }
                }
            }
        }
        partial = rest;
    }
}

#[cfg(unix)]
fn inode_of(m: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.ino()
}

#[cfg(not(unix))]
fn inode_of(_: &std::fs::Metadata) -> u64 {
    0
}
