//! nginx's `combined` access-log format:
//!
//! ```text
//! $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
//! ```
//!
//! Magpie writes it followed by ` $request_time` (seconds, millisecond
//! resolution), the most common extension, so latency survives; a reader of
//! plain `combined` ignores a trailing field, and this parser reads lines
//! with or without it (and lines in `common` format, which stop after the
//! byte count).
//!
//! Invariants:
//! - Quoted fields are escaped the way nginx's default `escape=default`
//!   does (`"`, `\`, control and non-ASCII bytes as `\xHH`), so a hostile
//!   user agent or path can never end its field early and forge the ones
//!   after it.
//! - Every event `parse_combined` returns, `format_combined` writes into a
//!   line `parse_combined` reads back into the same event (tested here and
//!   fuzzed by `fuzz/fuzz_targets/access_log.rs`). What the format cannot
//!   carry: `code`, sub-second `at_ms`, sub-millisecond latency, a user
//!   agent that is exactly `-`, and `miss` (read back as status 404).
//! - A request line that is not `METHOD TARGET [HTTP/x]` (a TLS hello sent
//!   to a plain port, `-`) keeps its event, with method and path `-`: a
//!   scanner's garbage is exactly what the edge guard wants to count.

use super::AccessEvent;
use super::civil::{MAX_MS, MIN_MS, format_time_local, parse_time_local};
use super::format::{ParseError, strip_query};
use crate::UserId;
use std::fmt::Write;
use std::net::IpAddr;

/// Latencies beyond this many milliseconds (about 31 years) are not
/// latencies; they are read as absent and written clamped.
const MAX_LATENCY_MS: f64 = 1e12;

/// One line in combined format plus `$request_time`, without a newline.
pub fn format_combined(e: &AccessEvent) -> String {
    let mut s = String::with_capacity(160);
    let user = e.user.map_or_else(|| "-".to_string(), |u| u.0.to_string());
    let time = format_time_local(e.at_ms.clamp(MIN_MS, MAX_MS - 1)).unwrap_or_default();
    let _ = write!(s, "{} - {user} [{time}] \"", e.ip);
    if e.method == "-" && e.path == "-" {
        s.push('-');
    } else {
        escape_into(&mut s, &e.method);
        s.push(' ');
        escape_into(&mut s, &e.path);
        s.push_str(" HTTP/1.1");
    }
    let _ = write!(s, "\" {} {} \"-\" \"", e.status, e.bytes);
    escape_into(&mut s, e.user_agent.as_deref().unwrap_or("-"));
    let latency = if e.latency_ms.is_finite() {
        e.latency_ms.clamp(0.0, MAX_LATENCY_MS)
    } else {
        0.0
    };
    let _ = write!(s, "\" {:.3}", latency / 1000.0);
    s
}

/// An access event from one combined-format line (see the module doc for
/// what is accepted).
pub fn parse_combined(line: &str) -> Result<AccessEvent, ParseError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let (addr, rest) = line
        .split_once(' ')
        .ok_or(ParseError::Missing("remote_user"))?;
    let ip: IpAddr = addr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| ParseError::bad("remote_addr", addr))?;
    let rest = rest
        .strip_prefix("- ")
        .ok_or(ParseError::Missing("remote_user"))?;
    let (remote_user, rest) = rest
        .split_once(" [")
        .ok_or(ParseError::Missing("time_local"))?;
    let (time, rest) = rest
        .split_once(']')
        .ok_or(ParseError::Missing("time_local"))?;
    let at_ms = parse_time_local(time).ok_or_else(|| ParseError::bad("time_local", time))?;
    let (request, rest) = quoted(rest.trim_start()).ok_or(ParseError::Missing("request"))?;
    let (method, path) = request_line(&unescape(request));
    let mut fields = rest.trim_start().splitn(3, ' ');
    let status = fields.next().filter(|s| !s.is_empty());
    let status = status.ok_or(ParseError::Missing("status"))?;
    let status: u16 = status
        .parse()
        .map_err(|_| ParseError::bad("status", status))?;
    let bytes = fields
        .next()
        .ok_or(ParseError::Missing("body_bytes_sent"))?;
    let bytes = match bytes {
        "-" => 0,
        b => b
            .parse()
            .map_err(|_| ParseError::bad("body_bytes_sent", b))?,
    };
    let (user_agent, latency_ms) = match fields.next().map(str::trim_start) {
        None | Some("") => (None, 0.0),
        Some(rest) => {
            let (_referer, rest) = quoted(rest).ok_or(ParseError::Missing("http_referer"))?;
            match quoted(rest.trim_start()) {
                Some((ua, extra)) => (Some(unescape(ua)), latency(extra)),
                None => (None, 0.0),
            }
        }
    };
    Ok(AccessEvent {
        at_ms,
        ip,
        user: remote_user.parse().ok().map(UserId),
        method,
        path,
        status,
        code: None,
        bytes,
        latency_ms,
        user_agent: user_agent.filter(|ua| ua != "-"),
        miss: status == 404,
    })
}

/// A quoted field at the start of `s`: its raw (still escaped) text and
/// what follows the closing quote. A backslash protects the next byte, so
/// `\"` (escape=json) does not end the field either.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let body = s.strip_prefix('"')?;
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            // ASCII, so `i` and `i + 1` are char boundaries.
            b'"' => return Some((&body[..i], &body[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// nginx's `\xHH` escapes (and JSON-style `\"` and `\\`) undone; bytes that
/// are not UTF-8 become U+FFFD.
fn unescape(raw: &str) -> String {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
        match (b[i], b.get(i + 1)) {
            (b'\\', Some(b'x')) if hex(i + 2).is_some() && hex(i + 3).is_some() => {
                let (hi, lo) = (hex(i + 2).unwrap_or(0), hex(i + 3).unwrap_or(0));
                out.push((hi * 16 + lo) as u8);
                i += 4;
            }
            (b'\\', Some(&c @ (b'"' | b'\\'))) => {
                out.push(c);
                i += 2;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends `s` with `"`, `\`, control and non-ASCII bytes as `\xHH`.
fn escape_into(out: &mut String, s: &str) {
    for &b in s.as_bytes() {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(b as char);
        }
    }
}

/// Method and path of a request line, or `-` and `-` when it is not one.
fn request_line(line: &str) -> (String, String) {
    let garbage = || ("-".to_string(), "-".to_string());
    let Some((method, rest)) = line.split_once(' ') else {
        return garbage();
    };
    let token = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    if method.is_empty() || method.len() > 32 || !method.bytes().all(token) {
        return garbage();
    }
    let target = match rest.rsplit_once(' ') {
        Some((target, proto)) if proto.starts_with("HTTP/") => target,
        _ => rest,
    };
    let path = strip_query(target);
    if path.is_empty() {
        return garbage();
    }
    (method.to_string(), path.to_string())
}

/// Latency in milliseconds from the fields after the user agent: the
/// first, when it is a number of seconds (`$request_time`), else 0.
fn latency(extra: &str) -> f64 {
    let first = extra.split_whitespace().next().unwrap_or("");
    match first.trim_matches('"').parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 && secs * 1000.0 <= MAX_LATENCY_MS => {
            (secs * 1000.0).round()
        }
        _ => 0.0,
    }
}

#[cfg(test)]
#[path = "nginx_tests.rs"]
mod tests;
