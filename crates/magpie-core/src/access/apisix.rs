//! APISIX's logger JSON (`file-logger`, `http-logger` with
//! `concat_method: new_line`, ...): one object per line, in the plugins'
//! default log format:
//!
//! ```text
//! {"client_ip":"192.168.65.1","start_time":1718291190508,"latency":1200.0000476837,
//!  "request":{"method":"GET","uri":"/anything","url":"http://127.0.0.1:9080/anything",
//!             "headers":{"user-agent":"curl/8.6.0",...},"size":85,...},
//!  "response":{"status":200,"size":617,...},"consumer":{"username":"..."},...}
//! ```
//!
//! Magpie writes the subset that carries an access event, plus a `magpie`
//! object APISIX does not have (`code`, `user`, `miss`); `request.url` is
//! written as the path alone (Magpie does not know the host it was reached
//! by) and `request.size` not at all (an event does not carry it).
//!
//! Invariants:
//! - `client_ip` and `response.status` are required; every other field may
//!   be missing (a custom `log_format` drops many).
//! - `start_time` is when the request started and `latency` how long it
//!   took, so an event's `at_ms` (its end) is their sum, written back as
//!   `at_ms - latency`; latency is kept to the microsecond so the sum reads
//!   back the same (see `parse_latency`).
//! - Every event `parse_apisix` returns, `format_apisix` writes into a line
//!   `parse_apisix` reads back into an equal event (fuzzed by
//!   `fuzz/fuzz_targets/access_log.rs`).

use super::AccessEvent;
use super::format::{ParseError, strip_query};
use crate::UserId;
use serde_json::{Map, Value, json};
use std::net::IpAddr;

/// Latencies beyond this many milliseconds (about 31 years) are not
/// latencies; they are read as absent and written clamped.
const MAX_LATENCY_MS: f64 = 1e12;

/// One APISIX-style JSON line, without a newline.
pub fn format_apisix(e: &AccessEvent) -> String {
    let latency = micros(e.latency_ms);
    let mut headers = Map::new();
    if let Some(ua) = &e.user_agent {
        headers.insert("user-agent".into(), ua.as_str().into());
    }
    let mut magpie = Map::new();
    magpie.insert("miss".into(), e.miss.into());
    if let Some(code) = &e.code {
        magpie.insert("code".into(), code.as_str().into());
    }
    let mut line = json!({
        "client_ip": e.ip.to_string(),
        "start_time": e.at_ms.saturating_sub(latency.round() as i64),
        "latency": latency,
        "request": {
            "method": e.method,
            "uri": e.path,
            "url": e.path,
            "headers": headers,
        },
        "response": { "status": e.status, "size": e.bytes },
    });
    if let (Some(user), Some(obj)) = (e.user, line.as_object_mut()) {
        magpie.insert("user".into(), user.0.into());
        obj.insert("consumer".into(), json!({ "username": user.0.to_string() }));
    }
    if let Some(obj) = line.as_object_mut() {
        obj.insert("magpie".into(), magpie.into());
    }
    line.to_string()
}

/// An access event from one APISIX logger line.
pub fn parse_apisix(line: &str) -> Result<AccessEvent, ParseError> {
    let line = line.trim();
    if line.is_empty() {
        return Err(ParseError::Empty);
    }
    let v: Value = serde_json::from_str(line).map_err(|e| ParseError::Json(e.to_string()))?;
    if !v.is_object() {
        return Err(ParseError::Json("a log line must be a JSON object".into()));
    }
    let ip = v.get("client_ip").ok_or(ParseError::Missing("client_ip"))?;
    let ip: IpAddr = ip
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ParseError::bad("client_ip", &ip.to_string()))?;
    let status = v
        .pointer("/response/status")
        .ok_or(ParseError::Missing("response.status"))?;
    let status = number(status)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| ParseError::bad("response.status", &status.to_string()))?;
    let latency_ms = v.get("latency").map_or(0.0, parse_latency);
    let start = v.get("start_time").and_then(integer).unwrap_or(0);
    let request = v.get("request");
    let text = |pointer: &str| {
        request
            .and_then(|r| r.pointer(pointer))
            .and_then(Value::as_str)
    };
    let method = text("/method").filter(|m| !m.is_empty()).unwrap_or("-");
    let path = text("/uri")
        .map(strip_query)
        .filter(|p| !p.is_empty())
        .or_else(|| text("/url").map(url_path).filter(|p| !p.is_empty()))
        .unwrap_or("-");
    let user_agent = request
        .and_then(|r| r.get("headers"))
        .and_then(Value::as_object)
        .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case("user-agent")))
        .and_then(|(_, ua)| ua.as_str())
        .map(str::to_string);
    let magpie = v.get("magpie");
    let user = magpie
        .and_then(|m| m.get("user"))
        .and_then(Value::as_i64)
        .or_else(|| {
            let name = v.pointer("/consumer/username")?.as_str()?;
            name.parse().ok()
        });
    Ok(AccessEvent {
        at_ms: start.saturating_add(latency_ms.round() as i64),
        ip,
        user: user.map(UserId),
        method: method.to_string(),
        path: path.to_string(),
        status,
        code: magpie
            .and_then(|m| m.get("code"))
            .and_then(Value::as_str)
            .map(str::to_string),
        bytes: v.pointer("/response/size").and_then(number).unwrap_or(0),
        latency_ms,
        user_agent,
        miss: magpie
            .and_then(|m| m.get("miss"))
            .and_then(Value::as_bool)
            .unwrap_or(status == 404),
    })
}

/// A latency finite, within 0 ..= `MAX_LATENCY_MS`, else 0.
fn sane_latency(ms: f64) -> f64 {
    if ms.is_finite() && (0.0..=MAX_LATENCY_MS).contains(&ms) {
        ms
    } else {
        0.0
    }
}

/// A latency from its JSON value (a number, or a numeric string).
fn parse_latency(v: &Value) -> f64 {
    let ms = v
        .as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()));
    micros(ms.unwrap_or(0.0))
}

/// A sane latency to the microsecond: such a value is printed in at most
/// 16 significant digits and parsed back by one exact division, so it
/// survives JSON unchanged (serde_json's default float parsing is exact
/// for values like these, not for every float).
fn micros(ms: f64) -> f64 {
    (sane_latency(ms) * 1000.0).round() / 1000.0
}

/// A non-negative integer, written as a number or a numeric string.
fn number(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// An integer, written as one or as a finite float (rounded).
fn integer(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite())
            .map(|f| f.round() as i64)
    })
}

/// The path of a URL, absolute (`http://host:port/p?q`) or not (`/p`).
fn url_path(url: &str) -> &str {
    let url = strip_query(url);
    match url.split_once("://") {
        Some((scheme, rest))
            if !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c)) =>
        {
            rest.find('/').map_or("/", |i| &rest[i..])
        }
        _ => url,
    }
}

#[cfg(test)]
#[path = "apisix_tests.rs"]
mod tests;
