//! Per-user, per-device client settings (docs/protocol.md §6).
//!
//! Two of them change what the server does with a message:
//! - `persistence` (the sender's) decides how long a message is kept;
//! - `resend` (the receiving device's) decides how soon and how often an
//!   unacknowledged push is resent.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Ws,
    Tcp,
}

/// How long a message is kept. Serialized as `"none"`, `"offline"`,
/// `"days:N"` or `"forever"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Persistence {
    /// Delivered to online devices; removed from the server as soon as one
    /// device of the receiver acknowledges delivery (or the offline TTL ends).
    None,
    /// Kept only until the receiver reads it, or until the offline TTL ends.
    Offline,
    /// Kept for this many days.
    Days(u32),
    /// Kept until deleted.
    #[default]
    Forever,
}

impl fmt::Display for Persistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Persistence::None => f.write_str("none"),
            Persistence::Offline => f.write_str("offline"),
            Persistence::Days(n) => write!(f, "days:{n}"),
            Persistence::Forever => f.write_str("forever"),
        }
    }
}

impl FromStr for Persistence {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Persistence::None),
            "offline" => Ok(Persistence::Offline),
            "forever" => Ok(Persistence::Forever),
            _ => match s.strip_prefix("days:").and_then(|n| n.parse::<u32>().ok()) {
                Some(n) if n > 0 => Ok(Persistence::Days(n)),
                _ => Err(format!(
                    "invalid persistence {s:?}: expected none, offline, days:N or forever"
                )),
            },
        }
    }
}
impl crate::text_form::TextForm for Persistence {
    const EXPECTING: &'static str = "a persistence (none, offline, days:N or forever)";
    type Error = String;
    fn from_text(s: &str) -> Result<Self, String> {
        s.parse()
    }
}
crate::text_form::text_serde!(Persistence);

impl TryFrom<String> for Persistence {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}
impl From<Persistence> for String {
    fn from(p: Persistence) -> String {
        p.to_string()
    }
}

impl Persistence {
    /// Stable small integer for storage.
    pub fn code(self) -> i64 {
        match self {
            Persistence::None => 0,
            Persistence::Offline => 1,
            Persistence::Days(_) => 2,
            Persistence::Forever => 3,
        }
    }
}

/// What the unread API reports for this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnreadMode {
    /// Per conversation and the total.
    #[default]
    PerConversation,
    /// Only the total.
    TotalOnly,
    /// No unread counts are reported.
    Off,
}

/// How eagerly an unacknowledged push is resent to this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ResendLevel {
    /// Never resent; the client relies on sync.
    Off,
    Low,
    #[default]
    Normal,
    High,
}

/// The timing a resend level stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResendPolicy {
    /// Wait this long for a delivery ack before the first resend; doubles each time.
    pub first_after_ms: u64,
    /// Resend at most this many times; after that the message waits for sync.
    pub max_resends: u32,
}

impl ResendLevel {
    pub fn policy(self) -> ResendPolicy {
        let (first_after_ms, max_resends) = match self {
            ResendLevel::Off => (0, 0),
            ResendLevel::Low => (10_000, 2),
            ResendLevel::Normal => (3_000, 4),
            ResendLevel::High => (1_000, 8),
        };
        ResendPolicy {
            first_after_ms,
            max_resends,
        }
    }
}

/// The settings a client keeps on the server. Unset fields take defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientSettings {
    pub transport: Transport,
    /// Whether messages this client sends may be indexed for search
    /// (docs/search.md): decided per message at acceptance. On by default.
    pub search: bool,
    /// Whether this client's own searches return anything (docs/search.md,
    /// "Opting out"): `false` with `search: false` takes the user out of
    /// search both ways. On by default.
    pub search_view: bool,
    pub persistence: Persistence,
    pub unread_mode: UnreadMode,
    pub resend: ResendLevel,
    /// Whether the offline push webhook may name this device (or, in the
    /// user default, the user's devices with no settings of their own)
    /// when a message arrives while none of the user's devices is online
    /// (docs/protocol.md, "Offline push webhook"). On by default.
    pub offline_push: bool,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            transport: Transport::default(),
            search: true,
            search_view: true,
            persistence: Persistence::default(),
            unread_mode: UnreadMode::default(),
            resend: ResendLevel::default(),
            offline_push: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persistence_round_trips() {
        for p in [
            Persistence::None,
            Persistence::Offline,
            Persistence::Days(7),
            Persistence::Forever,
        ] {
            assert_eq!(p.to_string().parse::<Persistence>().unwrap(), p);
        }
        assert!("days:0".parse::<Persistence>().is_err());
        assert!("sometimes".parse::<Persistence>().is_err());
    }

    #[test]
    fn settings_fill_defaults() {
        let s: ClientSettings = serde_json::from_str(r#"{"resend":"high"}"#).unwrap();
        assert_eq!(s.resend, ResendLevel::High);
        assert_eq!(s.persistence, Persistence::Forever);
        assert!(s.search, "search is on unless turned off");
        assert!(s.offline_push, "offline push is on unless turned off");
    }
}
