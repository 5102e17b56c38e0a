//! The offline push webhook (docs/protocol.md §8;
//! docs/config.md `[push]`): a consumer group of its own, `push`, on `msg`.
//! For each accepted message (not an edit, a recall or a member event) it
//! finds the recipients with no device online (`recipients.rs`), coalesces
//! their messages per (user, conversation) (`coalesce.rs`) and POSTs one
//! signed call per window to `push.webhook_url` (`sender.rs`, `payload.rs`).
//!
//! Invariants: the group acknowledges an event once its recipients are in
//! a coalescing window (commit after apply); sending happens elsewhere and
//! never holds the consumer back. Best effort: windows and calls not yet
//! sent are lost with the process, the messages themselves are durable
//! and synced. One group for the cluster, so a message is considered once
//! whichever node consumes it; coalescing is per node.

mod coalesce;
mod config;
mod payload;
mod recipients;
mod sender;

pub use config::PushConfig;

use super::Worker;
use crate::app::App;
use crate::error::{Result, ServerError};
use async_trait::async_trait;
use coalesce::{Coalescer, Item};
use magpie_core::{BusEvent, Message, MessageMeta, UserId};
use payload::Last;
use std::time::Duration;
use tokio::task::JoinHandle;

struct Push {
    coalescer: Coalescer,
}

#[async_trait]
impl Worker for Push {
    fn group(&self) -> String {
        "push".to_string()
    }
    fn topics(&self) -> Vec<String> {
        vec!["msg".to_string()]
    }
    async fn apply(&self, app: &App, events: &[BusEvent]) -> Result<()> {
        // Everything is worked out before anything joins a window, so a
        // batch that fails (and is retried event by event) adds nothing.
        let mut items = Vec::new();
        for e in events {
            let msgs = match e {
                BusEvent::Messages { msgs } => msgs.as_slice(),
                BusEvent::Message { msg } => std::slice::from_ref(msg),
                _ => continue,
            };
            for m in msgs {
                // Edits and recalls change a message already told of; a
                // member event (joined, left, …) is no news to wake for.
                let quiet = |x: &MessageMeta| x.revises().is_some() || x.event.is_some();
                if m.meta.as_deref().is_some_and(quiet) {
                    continue;
                }
                self.items(app, m, &mut items).await?;
            }
        }
        for item in items {
            self.coalescer.add(item);
        }
        Ok(())
    }
}

impl Push {
    async fn items(&self, app: &App, m: &Message, out: &mut Vec<Item>) -> Result<()> {
        let targets = recipients::targets(app, m).await?;
        if targets.is_empty() {
            return Ok(());
        }
        let from_name = self.name(app, m.from).await?;
        for t in targets {
            out.push(Item {
                user: t.user,
                conv: m.conv.clone(),
                devices: t.devices,
                others: t.others,
                last: Last::of(m, from_name.clone()),
                mentioned: t.mentioned,
            });
        }
        Ok(())
    }

    /// What to show for the sender (docs/protocol.md §3.18: display name,
    /// else username; the node's bounded cache of names); empty for a
    /// sender with no account (the system user).
    async fn name(&self, app: &App, user: UserId) -> Result<String> {
        match app.users.shown_name(user).await {
            Err(ServerError::NotFound(_)) => Ok(String::new()),
            other => other,
        }
    }
}

/// The webhook's consumer, when `push.webhook_url` is set.
pub fn spawn(app: &App) -> Option<(String, JoinHandle<()>)> {
    let cfg = &app.cfg.push;
    if !cfg.enabled() {
        return None;
    }
    if !(cfg.webhook_url.starts_with("http://") || cfg.webhook_url.starts_with("https://")) {
        // Every call would fail and end in the dead-letter counter.
        tracing::warn!(url = %cfg.webhook_url, "push.webhook_url is not http(s)://; calls will fail");
    }
    let sender = sender::Sender::start(cfg, app.shutdown.clone());
    let coalescer = Coalescer::start(
        Duration::from_millis(cfg.coalesce_ms),
        cfg.queue,
        sender,
        app.shutdown.clone(),
    );
    let worker = Push { coalescer };
    let run = super::run(app.clone(), Box::new(worker));
    Some(("push".into(), tokio::spawn(run)))
}
