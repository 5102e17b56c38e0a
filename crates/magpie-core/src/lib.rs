//! Magpie's domain vocabulary: identifiers, messages, bus events and client
//! settings. Every other crate speaks in these types.
//!
//! Invariant: this crate does no I/O and knows no wire format beyond serde
//! derives and the bus envelope (`envelope.rs`, the one place bus events
//! are encoded); it can be used from the server, the SDK and tests alike.

pub mod access;
pub mod backoff;
pub mod chain;
pub mod envelope;
pub mod event;
mod event_open;
pub mod feed;
pub mod group;
pub mod hash;
pub mod ids;
pub mod member_event;
pub mod message;
pub mod meta;
pub mod room;
pub mod settings;
mod text_form;
pub mod time;
pub mod trace;
pub mod views;

pub use access::AccessEvent;
pub use backoff::Backoff;
pub use chain::{CHAIN_ID_MAX, ChainLink};
pub use envelope::{Envelope, EventId};
pub use event::{
    BusEvent, DeliverPayload, MEMBERS_TOPIC, POST_TOPIC, Presence, ReadUpTo, group_topic,
    node_topic, room_topic,
};
pub use feed::{NewPost, Post, PostId, newest_first};
pub use group::{GroupId, GroupInfo, GroupRole, GroupStamp, MemberInfo};
pub use hash::{bucket_of, stable_hash};
pub use ids::{ClientMsgId, ConvId, DeviceId, IdError, MsgIdGen, Seq, ServerMsgId, UserId};
pub use member_event::MemberEvent;
pub use message::{Accepted, Message, NewMessage};
pub use meta::{MessageMeta, Revision};
pub use room::{RoomMessage, valid_room};
pub use settings::{ClientSettings, Persistence, ResendLevel, ResendPolicy, Transport, UnreadMode};
pub use time::now_ms;
pub use trace::TraceContext;
pub use views::{HistoryPage, SyncConv, UnreadConv, UserProfile};
