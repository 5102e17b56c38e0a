//! What the load tool reads from `/proc`: CPU time and resident memory of
//! a process (the server's and its own), and which local process listens on
//! a TCP port (so a server given by URL is measured too, when it runs here).
//!
//! Linux only, like the machines Magpie is measured on.

use std::path::Path;

/// Clock ticks per second for `/proc/*/stat` times. Linux has reported 100
/// for user space on every architecture for decades (`USER_HZ`).
const TICKS_PER_SEC: f64 = 100.0;

/// A process's CPU time (user + system) so far, in seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start
    // after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

/// A process's resident memory, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// This process's id.
pub fn own_pid() -> u32 {
    std::process::id()
}

/// The socket inodes listening on `port` (IPv4 and IPv6).
fn listening_inodes(port: u16) -> Vec<u64> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is "ADDR:PORT" in hex; state 0A is LISTEN.
            let Some(local) = f.get(1) else { continue };
            let listening = f.get(3) == Some(&"0A");
            let port_hex = local.rsplit(':').next().unwrap_or("");
            if listening && u16::from_str_radix(port_hex, 16) == Ok(port) {
                if let Some(inode) = f.get(9).and_then(|i| i.parse().ok()) {
                    out.push(inode);
                }
            }
        }
    }
    out
}

/// The local process listening on `port`, if it is visible to us.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let fds = Path::new("/proc").join(pid.to_string()).join("fd");
        let Ok(dir) = std::fs::read_dir(fds) else {
            continue;
        };
        for fd in dir.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && wanted.iter().any(|w| target.as_os_str() == w.as_str())
            {
                return Some(pid);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_process() {
        let pid = own_pid();
        assert!(cpu_secs(pid).is_some());
        assert!(rss_kib(pid).is_some_and(|kib| kib > 0));
    }

    #[test]
    fn finds_the_listener_of_a_port() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        assert_eq!(pid_listening_on(port), Some(own_pid()));
    }
}
