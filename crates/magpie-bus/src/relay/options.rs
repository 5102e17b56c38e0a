//! Relay options and their URL form: `mem://[NAME][?k=v&...]` and
//! `nats://HOST:PORT[/?k=v&...]`, whose query may override any tuning
//! option below (so a deployment or a whole-server test can set them from
//! one config string).

use crate::{BusError, Result};
use std::time::Duration;

/// How a relay numbers, heartbeats and buffers. The defaults suit a server.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// The publisher id subscribers see in `from`: give the node id, so a
    /// restarted node is recognised and its possibly lost last frames are
    /// reported. `None`: a random id (a restart then looks like a new
    /// publisher). At most 255 bytes.
    pub publisher: Option<String>,
    /// Heartbeat period of subjects in use (query `heartbeat_ms`). A lost
    /// last frame is reported within about one period; a publisher that
    /// stops mid-stream within four.
    pub heartbeat: Duration,
    /// How long heartbeats continue after the last publish on a subject
    /// (query `linger_ms`).
    pub linger: Duration,
    /// Frames buffered per subscription, and queued for sending on NATS,
    /// before frames are dropped and a gap reported (query `capacity`).
    /// A gap costs the subscriber a resync of its clients, so this is
    /// generous; in process each subject's channel takes it up front.
    pub capacity: usize,
    /// Wall-clock skew tolerated between publishers and subscribers (query
    /// `skew_ms`): frames a new subscriber missed that were sent less than
    /// this before it subscribed are reported as a gap, since they may have
    /// been sent after. In process there is one clock: 0 would do.
    pub skew: Duration,
    /// FAULT INJECTION, for tests only (query `drop`): the share of frames,
    /// data and heartbeats alike, that `publish` throws away instead of
    /// sending, as a lossy link would. 0 in production.
    pub drop: f64,
    /// NATS only: subjects are `{prefix}.{subject}` (query `prefix`), kept
    /// apart from the JetStream stream's subjects.
    pub prefix: String,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            publisher: None,
            heartbeat: Duration::from_millis(500),
            linger: Duration::from_secs(3),
            capacity: 16384,
            skew: Duration::from_millis(500),
            drop: 0.0,
            prefix: "magpie_relay".into(),
        }
    }
}

impl RelayOptions {
    /// Splits `url` into its base and applies its query to `self`.
    pub(crate) fn apply_query(&mut self, url: &str) -> Result<String> {
        let Some((base, query)) = url.split_once('?') else {
            return Ok(url.to_string());
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let ms = || value.parse::<u64>().map(Duration::from_millis);
            let bad = |e: &dyn std::fmt::Display| {
                BusError::Config(format!("relay url: bad {key}={value:?}: {e}"))
            };
            match key {
                "heartbeat_ms" => self.heartbeat = ms().map_err(|e| bad(&e))?,
                "linger_ms" => self.linger = ms().map_err(|e| bad(&e))?,
                "skew_ms" => self.skew = ms().map_err(|e| bad(&e))?,
                "capacity" => self.capacity = value.parse().map_err(|e| bad(&e))?,
                "drop" => self.drop = value.parse().map_err(|e| bad(&e))?,
                "prefix" => self.prefix = value.to_string(),
                _ => {
                    return Err(BusError::Config(format!(
                        "relay url: unknown option {key:?}"
                    )));
                }
            }
        }
        self.check()?;
        Ok(base.trim_end_matches('/').to_string())
    }

    pub(crate) fn check(&self) -> Result<()> {
        let fail = |what: &str| Err(BusError::Config(format!("relay: {what}")));
        if !(0.0..=1.0).contains(&self.drop) {
            return fail("drop must be between 0 and 1");
        }
        if self.heartbeat.is_zero() || self.capacity == 0 {
            return fail("heartbeat and capacity must be positive");
        }
        if self
            .publisher
            .as_ref()
            .is_some_and(|p| p.is_empty() || p.len() > 255)
        {
            return fail("publisher id must be 1 to 255 bytes");
        }
        Ok(())
    }
}

/// Subjects are dot-separated tokens without wildcards or spaces, so they
/// mean the same on every backend.
pub(crate) fn check_subject(subject: &str) -> Result<()> {
    let bad = subject.is_empty()
        || subject
            .split('.')
            .any(|t| t.is_empty() || t == "*" || t == ">")
        || subject.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad {
        return Err(BusError::Config(format!("bad relay subject {subject:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_overrides_and_rejects() {
        let mut o = RelayOptions::default();
        let base = o
            .apply_query("nats://h:4222/?drop=0.25&heartbeat_ms=100&prefix=t1")
            .expect("parse");
        assert_eq!(base, "nats://h:4222");
        assert_eq!(
            (o.drop, o.heartbeat, o.prefix.as_str()),
            (0.25, Duration::from_millis(100), "t1")
        );
        assert!(
            RelayOptions::default()
                .apply_query("mem://?drop=2")
                .is_err()
        );
        assert!(
            RelayOptions::default()
                .apply_query("mem://?nope=1")
                .is_err()
        );
        assert!(check_subject("node.n2").is_ok());
        assert!(check_subject("node.*").is_err() && check_subject("a..b").is_err());
    }
}
