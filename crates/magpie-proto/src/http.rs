//! HTTP request and response bodies (JSON). Routes are documented in
//! docs/protocol.md; errors use [`crate::ErrorBody`].

use magpie_core::{
    ChainLink, ClientMsgId, ClientSettings, DeviceId, GroupId, GroupInfo, GroupRole, MemberInfo,
    Persistence, Post, PostId, Seq, Transport, UserId,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserCreated {
    pub user_id: UserId,
    pub username: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// The device logging in; defaults to "default".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceId>,
    /// A solved captcha, when the server asked for one (`captcha_required`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captcha: Option<CaptchaAnswer>,
}

/// A solved captcha, as a login carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptchaAnswer {
    pub id: String,
    pub answer: String,
}

/// `GET /v1/auth/captcha`: an image to solve, good for one login attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptchaChallenge {
    pub id: String,
    /// A PNG as a `data:` URL.
    pub image: String,
    /// Seconds it can be answered.
    pub expires_in: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Answer to login, refresh and the internal token call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tokens {
    pub user_id: UserId,
    pub device: DeviceId,
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single-use; exchange at `POST /v1/auth/refresh` for a new pair.
    pub refresh_token: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectRequest {
    /// Overrides the device's transport setting for this connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectResponse {
    pub transport: Transport,
    /// `ws://host:port/v1/ws` for WebSocket, `host:port` for TCP.
    pub address: String,
    /// One-time ticket for the `hello` frame.
    pub ticket: String,
    /// Seconds the ticket stays valid.
    pub expires_in: u64,
    pub node: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendRequest {
    /// The receiver of a direct message; absent (0) for a group message.
    #[serde(default, skip_serializing_if = "UserId::is_unset")]
    pub to: UserId,
    pub cmid: ClientMsgId,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
    /// The group of a group message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupId>,
    /// This message's link in the device's ordering chain
    /// (docs/protocol.md, "Ordering chain"); absent: not ordered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainLink>,
    /// Sample this message's trace whatever the sampling ratio (the trace
    /// context itself comes in the `traceparent` header).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sample: bool,
    /// A reply: the sequence of the message of this conversation it
    /// answers (docs/protocol.md §5.10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Seq>,
    /// An edit: `body` is the new text of this sequence, a message of the
    /// sender's in this conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit: Option<Seq>,
    /// A recall of this sequence (`body` empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall: Option<Seq>,
    /// Members of the group this message mentions (docs/protocol.md §5.11).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<UserId>,
    /// `@all`: mentions every member (owners and admins only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mention_all: bool,
}

/// `GET /v1/chain` (and the `chain_result` frame): the chain id this
/// device's next chained send carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainResponse {
    pub next: String,
}

/// Internal API: send as a user (`from`) or, without `from`, as the system.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InternalSendRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<UserId>,
    pub to: UserId,
    pub cmid: ClientMsgId,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
}

/// Internal API: follows imported in bulk, every one of `followers`
/// following `followee`; `read` also reads each follower's feed once (its
/// inbox is marked: the follower is active).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InternalFollowsRequest {
    pub followee: UserId,
    pub followers: Vec<UserId>,
    #[serde(default)]
    pub read: bool,
}

/// The answer to `POST /internal/v1/follows`: follows that are new, that
/// were there already, and that a block refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternalFollowsResponse {
    pub added: u64,
    pub existing: u64,
    pub refused: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InternalTokenRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SettingsBody {
    #[serde(flatten)]
    pub settings: ClientSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadRequest {
    pub seq: i64,
}

/// `PUT /v1/conversations/{conv}/mute` (docs/protocol.md §5.11), and its
/// answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MuteRequest {
    pub muted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub node: String,
    pub version: String,
}

/// Answer to a send (HTTP); the `sent` frame carries the same fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResult {
    pub cmid: ClientMsgId,
    pub server_id: magpie_core::ServerMsgId,
    pub conv: magpie_core::ConvId,
    pub seq: i64,
    pub sent_at: i64,
    /// True when this client message id was accepted before: these are the original ids.
    pub duplicate: bool,
}

impl SendResult {
    pub fn new(cmid: ClientMsgId, a: magpie_core::Accepted) -> Self {
        SendResult {
            cmid,
            server_id: a.server_id,
            conv: a.conv,
            seq: a.seq,
            sent_at: a.sent_at,
            duplicate: a.duplicate,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncRequest {
    #[serde(default, deserialize_with = "crate::frames::sync_positions")]
    pub convs: std::collections::BTreeMap<magpie_core::ConvId, i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncResponse {
    pub convs: Vec<crate::SyncConv>,
}

pub use magpie_core::HistoryPage;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnreadResponse {
    pub total: i64,
    pub convs: Vec<crate::UnreadConv>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadResponse {
    pub conv: magpie_core::ConvId,
    pub seq: i64,
}

/// `POST /v1/groups`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGroupRequest {
    pub name: String,
    /// Members besides the creator (who becomes the owner).
    #[serde(default)]
    pub members: Vec<UserId>,
    /// Messages from before a join that a new member sees (0: none).
    #[serde(default)]
    pub history: i64,
}

/// `PATCH /v1/groups/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameGroupRequest {
    pub name: String,
}

/// `GET /v1/groups`: the caller's groups.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupList {
    pub groups: Vec<GroupInfo>,
}

/// `POST /v1/groups/{id}/members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMembersRequest {
    pub users: Vec<UserId>,
}

/// The users that were not members yet and now are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddMembersResponse {
    pub added: Vec<UserId>,
}

/// `PUT /v1/groups/{id}/owner`: the member who becomes the owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerRequest {
    pub user: UserId,
}

/// `PATCH /v1/groups/{id}/members/{user}`: either or both.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<GroupRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted: Option<bool>,
}

/// `GET /v1/groups/{id}/members`: a page by user id; `next` is the `after`
/// of the next page, absent on the last.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MembersPage {
    pub members: Vec<MemberInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<UserId>,
}

/// `GET /v1/groups/{id}/messages/{seq}/read_by`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadByPage {
    pub seq: Seq,
    /// Members who could see the message and have read it.
    pub read: i64,
    /// Members who could see the message and have not.
    pub unread: i64,
    /// This page of readers (`state=read`) or non-readers (`state=unread`).
    pub users: Vec<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<UserId>,
}

// -- follow feeds (docs/protocol.md §3.16, docs/feeds.md)

/// `POST /v1/posts`: a post, idempotent by `cmid` like a message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostRequest {
    pub cmid: ClientMsgId,
    pub body: String,
}

/// The answer to `POST /v1/posts`: the post as stored; `duplicate` when
/// `cmid` was seen before (the original post, whatever the retry carried).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostResponse {
    pub post: Post,
    pub duplicate: bool,
}

/// `GET /v1/feed` and `GET /v1/users/{id}/posts`: newest first; `next` is
/// the `before` of the next page, absent on the last.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostsPage {
    pub posts: Vec<Post>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<PostId>,
}

/// `GET /v1/users/{id}/followers`, `…/following` and `GET /v1/blocks`: a
/// page by user id; `next` is the `after` of the next page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsersPage {
    pub users: Vec<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<UserId>,
}

/// `GET /v1/users?name=…` and `GET /v1/users/{id}`: who a user is.
pub use magpie_core::UserProfile;

/// `GET /v1/users/{id}/follows`: both counts, exact.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct FollowCountsBody {
    pub followers: i64,
    pub following: i64,
}

/// `POST /v1/follows/{id}` and `POST /v1/blocks/{id}`: whether it is new.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Changed {
    pub changed: bool,
}

/// `GET /internal/v1/trace/{server_id}` (and `magpie trace`): the hops of
/// one message from every node (docs/observability.md).
pub use magpie_core::trace::{TraceHop, TraceReport};
