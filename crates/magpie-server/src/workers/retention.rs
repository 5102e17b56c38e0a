//! The storage worker: applies persistence levels. `none` messages go once
//! delivered, `offline` ones once read, and the sweeper removes whatever has
//! expired (days:N, and undelivered/unread ones past the offline TTL).
//! Removed messages are dropped from the offline sets too; sync reports
//! them as unavailable rather than leaving a silent gap.

use super::Worker;
use crate::app::App;
use crate::error::Result;
use crate::services::trace::{Hop, HopKind};
use async_trait::async_trait;
use magpie_core::{BusEvent, now_ms};
use magpie_store::RetentionHit;
use std::time::Duration;

pub struct Retention;

/// Drops removed messages from the offline sets; each removal is a
/// `removed` hop of its message's trace (`why`: delivered, read, expired).
async fn forget(app: &App, hits: Vec<RetentionHit>, why: &'static str) -> Result<()> {
    for h in hits {
        let seqs = [h.seq];
        app.state.offline_remove(h.to, &h.conv, &seqs).await?;
        if let Some(peer) = h.conv.peer_of(h.to).filter(|p| *p != h.to) {
            app.state.offline_remove(peer, &h.conv, &seqs).await?;
        }
        if app.traces.enabled() {
            let hop = Hop::at(HopKind::Removed, &h.conv, h.seq).user(h.to);
            app.traces.record(hop.detail(why));
        }
    }
    Ok(())
}

#[async_trait]
impl Worker for Retention {
    fn group(&self) -> String {
        "storage".into()
    }
    fn topics(&self) -> Vec<String> {
        ["delivered", "read"].map(String::from).to_vec()
    }
    async fn apply(&self, app: &App, events: &[BusEvent]) -> Result<()> {
        for ev in events {
            let (hits, why) = match ev {
                BusEvent::Delivered {
                    user, conv, seqs, ..
                } => (
                    app.store
                        .retention()
                        .delete_delivered(*user, conv, seqs)
                        .await?,
                    "delivered",
                ),
                BusEvent::Read(r) => (
                    app.store
                        .retention()
                        .delete_read(r.user, &r.conv, r.seq)
                        .await?,
                    "read",
                ),
                _ => continue,
            };
            forget(app, hits, why).await?;
        }
        Ok(())
    }
}

/// Periodically removes expired messages.
pub async fn sweep(app: App) {
    let every = Duration::from_secs(app.cfg.retention.sweep_interval_secs.max(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = app.shutdown.cancelled() => return,
        }
        loop {
            match app.store.retention().delete_expired(now_ms(), 1000).await {
                Ok(hits) => {
                    let n = hits.len();
                    if let Err(e) = forget(&app, hits, "expired").await {
                        tracing::warn!(error = %e, "retention cache trim failed");
                    }
                    if n < 1000 {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "retention sweep failed");
                    break;
                }
            }
        }
    }
}
