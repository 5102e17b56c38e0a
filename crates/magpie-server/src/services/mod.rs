//! The services: what the server does, apart from how clients reach it.
//! Each is a struct that owns the handles (ports) it uses, built once in the
//! composition root (`crate::start`, through [`crate::App::new`]):
//!
//! | service | owns | does |
//! |---|---|---|
//! | [`Messaging`] | store, state, events, ids, users, groups, delivery | send (pipeline), sync, history, unread, read, delivered acks, group receipts |
//! | [`Groups`] | store, events, users | group management and its rules; membership checks for sends |
//! | [`Feeds`] | store, state, events, users, ids | follows, blocks, posts and the home feed (docs/feeds.md) |
//! | [`Delivery`] | store, state, events, hub, local group and room indexes | pushes to online devices on this node and others, broadcasts, resync hints |
//! | [`Presence`] | store, delivery | presence changes and their fan-out (relay, not the log) |
//! | [`Rooms`] | events, delivery | live rooms: join, leave, send with shedding |
//! | [`Search`] | store, search index | message search within what the caller may see (docs/search.md) |
//! | [`Typing`] | groups, delivery, guard | typing indicators: checked, throttled, pushed (relay, never stored) |
//! | [`Traces`] | relay | the hops of each message on this node, and one message's hops gathered from every node (docs/observability.md) |
//!
//! Direction (checked by `tests/layers.rs`): `edge` and `conn` call the
//! services; services, workers and `cluster` never import `conn` or `edge`.
//! Services answer with domain types (`magpie_core`); only `Delivery`
//! writes wire frames, because a push is encoded once for all its devices.
//!
//! Invariants (ARCHITECTURE.md):
//! - the sender is acknowledged only after the store has committed the
//!   message AND the bus has durably taken its event;
//! - pushes are best effort and never fail a send;
//! - a client message id, scoped to its sender, always answers with the
//!   original server id and sequence (fast path in state, truth in the store).

pub mod alarms;
pub mod delivery;
mod events;
mod feeds;
mod generations;
mod group_events;
mod groups;
pub mod messaging;
mod missing;
mod presence;
mod profiles;
mod republish;
pub mod roll_call;
mod rooms;
mod search;
pub mod trace;
mod typing;
mod users;

pub use delivery::Delivery;
pub use events::Events;
pub use feeds::{DEFAULT_PAGE as FEED_PAGE, FeedPage, Feeds};
pub use groups::Groups;
pub use messaging::{MessagesConfig, Messaging, SendDefaults, SendInput};
pub use presence::Presence;
pub use rooms::Rooms;
pub use search::{Search, SearchRequest};
pub use trace::{Hop, HopKind, TraceConfig, Traces};
pub use typing::{Typing, TypingConfig};
pub use users::Users;
