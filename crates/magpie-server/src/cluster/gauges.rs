//! Node gauges read on a timer rather than counted on a path: the data
//! directory's free and total bytes (for the disk alert of the embedded
//! backends, docs/observability.md) and how many live nodes the registry
//! holds as this node sees it (for the registry alert).

use crate::app::App;
use crate::metrics::{CLUSTER_NODES, DATA_DIR_CAPACITY, DATA_DIR_FREE};
use std::path::Path;
use std::time::Duration;

const EVERY: Duration = Duration::from_secs(5);

/// Until shutdown, every `EVERY`; the registry (a state round trip) no more
/// often than the nodes write it, every `cluster.heartbeat_ms`.
pub async fn run(app: App) {
    let registry_every = EVERY.max(Duration::from_millis(app.cfg.cluster.heartbeat_ms));
    let mut registry_read: Option<tokio::time::Instant> = None;
    loop {
        if let Some((free, total)) = space(&app.cfg.data_dir) {
            metrics::gauge!(DATA_DIR_FREE).set(free as f64);
            metrics::gauge!(DATA_DIR_CAPACITY).set(total as f64);
        }
        if registry_read.is_none_or(|at| at.elapsed() >= registry_every) {
            registry_read = Some(tokio::time::Instant::now());
            if let Ok(nodes) = app.state.nodes().await {
                metrics::gauge!(CLUSTER_NODES).set(nodes.len() as f64);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = app.shutdown.cancelled() => return,
        }
    }
}

/// Bytes available to this process and in all, on the file system of `dir`.
fn space(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string that outlives the call and
    // `st` is a plain struct the call fills in.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frag = st.f_frsize as u64;
    Some((st.f_bavail as u64 * frag, st.f_blocks as u64 * frag))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_data_dirs_file_system_has_room() {
        let (free, total) = super::space(std::path::Path::new("/")).expect("statvfs");
        assert!(total > 0 && free <= total);
    }
}
