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
use crate::error::Result;
use async_trait::async_trait;
use coalesce::{Coalescer, Item};
use magpie_core::{BusEvent, Message, MessageMeta, UserId};
use parking_lot::Mutex;
use payload::Last;
use std::collections::HashMap;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Usernames kept for `from_name` before the cache starts over.
const NAMES: usize = 100_000;

struct Push {
    coalescer: Coalescer,
    /// Sender names, read once each (a username never changes).
    names: Mutex<HashMap<UserId, String>>,
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

    /// The sender's username, from the cache or the store (empty for a
    /// user the store does not know any more).
    async fn name(&self, app: &App, user: UserId) -> Result<String> {
        if let Some(n) = self.names.lock().get(&user) {
            return Ok(n.clone());
        }
        let name = app
            .store
            .accounts()
            .user_by_id(user)
            .await?
            .map(|u| u.username)
            .unwrap_or_default();
        let mut names = self.names.lock();
        if names.len() >= NAMES {
            names.clear();
        }
        names.insert(user, name.clone());
        Ok(name)
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
    let worker = Push {
        coalescer,
        names: Mutex::new(HashMap::new()),
    };
    let run = super::run(app.clone(), Box::new(worker));
    Some(("push".into(), tokio::spawn(run)))
}
