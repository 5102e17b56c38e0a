//! The access-log formats as one configurable value, and the one error
//! every parser returns.
//!
//! Invariant: a parser never panics on any input (the `access_log` fuzz
//! target holds it to that), and every event a parser returns is written
//! by the same format's formatter into a line that parser reads back
//! (docs/fuzzing.md).

use super::{AccessEvent, apisix, nginx};
use std::fmt;
use std::str::FromStr;

/// Why a log line is not an access event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty line")]
    Empty,
    #[error("{0}: missing")]
    Missing(&'static str),
    /// A field is there but unreadable; `value` is cut to a short prefix.
    #[error("{field}: bad value {value:?}")]
    Bad { field: &'static str, value: String },
    #[error("malformed json: {0}")]
    Json(String),
    #[error("unknown access-log format {0:?} (expected \"combined\", \"nginx\" or \"apisix\")")]
    UnknownFormat(String),
}

impl ParseError {
    /// A bad field, quoting at most 64 bytes of what was there so a hostile
    /// line cannot make the error (and whatever logs it) large.
    pub(crate) fn bad(field: &'static str, value: &str) -> Self {
        let mut end = value.len().min(64);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        ParseError::Bad {
            field,
            value: value[..end].to_string(),
        }
    }
}

/// An access-log format, as named in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogFormat {
    /// nginx's `combined` (plus `$request_time`, see `nginx.rs`).
    Combined,
    /// APISIX's `file-logger` / `http-logger` JSON, one object per line.
    Apisix,
}

impl LogFormat {
    /// One log line (without its newline) as an access event.
    pub fn parse(&self, line: &str) -> Result<AccessEvent, ParseError> {
        match self {
            LogFormat::Combined => nginx::parse_combined(line),
            LogFormat::Apisix => apisix::parse_apisix(line),
        }
    }

    /// An access event as one log line, without a newline.
    pub fn format(&self, e: &AccessEvent) -> String {
        match self {
            LogFormat::Combined => nginx::format_combined(e),
            LogFormat::Apisix => apisix::format_apisix(e),
        }
    }

    /// The name configuration uses for it.
    pub fn name(&self) -> &'static str {
        match self {
            LogFormat::Combined => "combined",
            LogFormat::Apisix => "apisix",
        }
    }
}

impl FromStr for LogFormat {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "combined" | "nginx" => Ok(LogFormat::Combined),
            "apisix" => Ok(LogFormat::Apisix),
            _ => Err(ParseError::UnknownFormat(s.to_string())),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The path of a request target: the query (and a fragment) cut off.
pub(crate) fn strip_query(target: &str) -> &str {
    let end = target.find(['?', '#']).unwrap_or(target.len());
    &target[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names() {
        assert_eq!("combined".parse(), Ok(LogFormat::Combined));
        assert_eq!("nginx".parse(), Ok(LogFormat::Combined));
        assert_eq!(" APISIX ".parse(), Ok(LogFormat::Apisix));
        let e = "json".parse::<LogFormat>().unwrap_err();
        assert_eq!(e, ParseError::UnknownFormat("json".into()));
        assert!(e.to_string().contains("\"combined\""), "{e}");
        for f in [LogFormat::Combined, LogFormat::Apisix] {
            assert_eq!(f.name().parse(), Ok(f));
        }
    }

    #[test]
    fn bad_values_are_cut_on_a_char_boundary() {
        let long = "é".repeat(100);
        match ParseError::bad("ip", &long) {
            ParseError::Bad { value, .. } => assert_eq!(value, "é".repeat(32)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn query_and_fragment_are_stripped() {
        assert_eq!(strip_query("/v1/users?id=1"), "/v1/users");
        assert_eq!(strip_query("/a#frag"), "/a");
        assert_eq!(strip_query("/plain"), "/plain");
        assert_eq!(strip_query("?only"), "");
    }
}
