//! Announcing membership changes in the group's conversation
//! (`magpie_core::member_event`, docs/protocol.md §3.14).
//!
//! The change is committed first, then its event is sent through the
//! messaging pipeline. Invariant: an event is never written for a change
//! that did not happen. Not guaranteed: a process that dies between the
//! two, or a store that refuses the event (unavailable), leaves the change
//! without its event; the change itself is the truth (`GET
//! /v1/groups/{id}/members`), and the failure is logged and counted
//! (`magpie_member_events_total{outcome="lost"}`).

use super::Groups;
use magpie_core::{GroupId, MemberEvent};

const MEMBER_EVENTS: &str = "magpie_member_events_total";

impl Groups {
    /// Sends `event` into group `g`'s conversation, when the group has
    /// member events on (`groups.member_events`).
    pub(super) async fn announce(&self, g: GroupId, event: MemberEvent) {
        if !self.cfg.groups.member_events {
            return;
        }
        // The sentence names users as frames show them (docs/protocol.md
        // §3.18); one whose name cannot be read now is `user N`.
        let mut names = std::collections::HashMap::new();
        for u in event.named() {
            if let Ok(n) = self.users.shown_name(u).await {
                names.insert(u, n);
            }
        }
        let body = event.describe(|u| {
            names
                .get(&u)
                .cloned()
                .unwrap_or_else(|| format!("user {u}"))
        });
        let outcome = match self.messaging.member_event(g, event, body).await {
            Ok(_) => "sent",
            Err(e) => {
                tracing::warn!(error = %e, group = %g, "member event not written; the change stands");
                "lost"
            }
        };
        metrics::counter!(MEMBER_EVENTS, "outcome" => outcome).increment(1);
    }
}
