//! One hop as the ring keeps it: a few words, no body.
//!
//! Why so small: at full load a node records ~7 hops per message into a
//! buffer far larger than the CPU's caches, so every hop written misses the
//! cache (the oldest hop it replaces is read first) and pushes out lines the
//! message path uses (docs/performance.md "Where tracing's cost was"). A
//! hop is 72 bytes: the device or the detail share one slot
//! (no hop has both), the transport is a byte, and a trace context is kept
//! only when the message carries one (sampled or given by its client); an
//! unsampled message's is derived from its server id when read.

use magpie_core::{ConvId, Message, Seq, TraceContext, UserId};
use std::sync::Arc;

use super::{conv_key, now_us};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HopKind {
    #[default]
    Accepted,
    Durable,
    Published,
    Forwarded,
    Offline,
    /// Counted in its receiver's unread count and offline queue (the state
    /// worker; direct messages only: groups keep no per-member state).
    Unread,
    Pushed,
    Delivered,
    Read,
    Indexed,
    /// Deleted by its persistence level (`detail`: delivered, read or
    /// expired). Names a conversation and a sequence, like a read.
    Removed,
}

impl HopKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HopKind::Accepted => "accepted",
            HopKind::Durable => "durable",
            HopKind::Published => "published",
            HopKind::Forwarded => "forwarded",
            HopKind::Offline => "offline",
            HopKind::Unread => "unread",
            HopKind::Pushed => "pushed",
            HopKind::Delivered => "delivered",
            HopKind::Read => "read",
            HopKind::Indexed => "indexed",
            HopKind::Removed => "removed",
        }
    }

    /// The name of its exported span.
    pub fn span_name(self) -> &'static str {
        match self {
            HopKind::Accepted => "magpie.accepted",
            HopKind::Durable => "magpie.durable",
            HopKind::Published => "magpie.published",
            HopKind::Forwarded => "magpie.forwarded",
            HopKind::Offline => "magpie.offline",
            HopKind::Unread => "magpie.unread",
            HopKind::Pushed => "magpie.pushed",
            HopKind::Delivered => "magpie.delivered",
            HopKind::Read => "magpie.read",
            HopKind::Indexed => "magpie.indexed",
            HopKind::Removed => "magpie.removed",
        }
    }
}

/// One hop as kept: ids and a time, no body.
#[derive(Debug, Clone, Default)]
pub struct Hop {
    pub at_us: i64,
    /// 0 for a read or a removal (they name a conversation and a sequence).
    pub server_id: i64,
    /// The conversation's stable hash (`conv_key`).
    pub conv: u64,
    pub seq: Seq,
    /// The sender (accepted) or the receiver (pushed, delivered, read,
    /// offline, unread, removed); 0 when none.
    pub user: i64,
    /// The device (`accepted`, `pushed`, `delivered`), else the detail.
    note: Option<Arc<str>>,
    /// The message's own trace context, when it carries one.
    carried: Option<Box<TraceContext>>,
    pub kind: HopKind,
    /// 0 none, else 1 + the index in `TRANSPORTS`.
    transport: u8,
    /// The `accepted` hop of a message whose trace the server started: its
    /// exported span is the trace's root (`export.rs`).
    pub root: bool,
}

const TRANSPORTS: [&str; 2] = ["ws", "tcp"];

impl Hop {
    /// A hop of `msg` now.
    pub fn of(kind: HopKind, msg: &Message) -> Hop {
        Hop {
            kind,
            at_us: now_us(),
            server_id: msg.server_id.0,
            conv: conv_key(&msg.conv),
            seq: msg.seq,
            carried: msg.trace.map(Box::new),
            ..Hop::default()
        }
    }

    /// A hop that names a position of `conv` now (a read, a removal).
    pub fn at(kind: HopKind, conv: &ConvId, seq: Seq) -> Hop {
        Hop {
            kind,
            at_us: now_us(),
            conv: conv_key(conv),
            seq,
            ..Hop::default()
        }
    }

    pub fn user(mut self, user: UserId) -> Hop {
        self.user = user.0;
        self
    }

    /// Sets the device of an `accepted`, `pushed` or `delivered` hop.
    pub fn device(mut self, device: Option<&Arc<str>>) -> Hop {
        debug_assert!(self.has_device(), "{:?} names no device", self.kind);
        self.note = device.cloned();
        self
    }

    /// Sets the detail of any other hop.
    pub fn detail(mut self, detail: impl Into<Arc<str>>) -> Hop {
        debug_assert!(!self.has_device(), "{:?} has a device", self.kind);
        self.note = Some(detail.into());
        self
    }

    pub fn transport(mut self, transport: &str) -> Hop {
        self.transport = TRANSPORTS
            .iter()
            .position(|t| *t == transport)
            .map_or(0, |i| i as u8 + 1);
        self
    }

    /// The trace context a message of this hop carries.
    pub fn carrying(mut self, trace: Option<TraceContext>) -> Hop {
        self.carried = trace.map(Box::new);
        self
    }

    fn has_device(&self) -> bool {
        matches!(
            self.kind,
            HopKind::Accepted | HopKind::Pushed | HopKind::Delivered
        )
    }

    pub fn device_name(&self) -> Option<&str> {
        self.note.as_deref().filter(|_| self.has_device())
    }

    pub fn detail_text(&self) -> Option<&str> {
        self.note.as_deref().filter(|_| !self.has_device())
    }

    pub fn transport_name(&self) -> Option<&'static str> {
        TRANSPORTS
            .get(usize::from(self.transport).checked_sub(1)?)
            .copied()
    }

    /// The message's trace context: the one it carries, else the one
    /// every node derives from its server id; `None` for a hop that names
    /// no message (a read, a removal).
    pub fn trace(&self) -> Option<TraceContext> {
        match &self.carried {
            Some(t) => Some(**t),
            None => (self.server_id != 0).then(|| TraceContext::derived(self.server_id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hop_stays_within_72_bytes() {
        assert!(
            std::mem::size_of::<Hop>() <= 72,
            "{}",
            std::mem::size_of::<Hop>()
        );
    }
}
