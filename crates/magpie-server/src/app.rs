//! The shared service context every role works through: configuration, the
//! three backends (as handles over traits), credentials, the local hub and
//! the id generator. Cheap to clone.
//!
//! Invariant: nothing here names a concrete backend; the composition root
//! (`crate::start`) picks them from configuration URLs.

use crate::auth::Auth;
use crate::config::Config;
use crate::conn::hub::Hub;
use magpie_bus::Bus;
use magpie_core::{MsgIdGen, UserId};
use magpie_store::{State, Store};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::ops::Deref;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub struct AppInner {
    pub cfg: Config,
    pub store: Store,
    pub state: State,
    pub bus: Bus,
    pub auth: Auth,
    pub hub: Hub,
    /// Group → members connected here (super-group broadcasts).
    pub group_index: crate::conn::groups::GroupIndex,
    /// Live rooms' audiences, recent buffers and limiters on this node.
    pub rooms: crate::conn::rooms::Rooms,
    pub ids: MsgIdGen,
    /// Group reads waiting to become coalesced receipts.
    pub receipts: crate::logic::GroupReceipts,
    /// Where every checked send goes to be made durable (`logic/pipeline.rs`).
    pub pipeline: crate::logic::Pipeline,
    /// Users known to exist. Users are never deleted, so a hit needs no
    /// store round trip on the send path.
    known_users: Mutex<HashSet<UserId>>,
    /// Addresses clients are told to connect to.
    pub ws_url: String,
    pub tcp_addr: Option<String>,
    /// Cancelled when the node starts shutting down.
    pub shutdown: CancellationToken,
    /// Every client session (TCP and WebSocket), from its handshake until
    /// its socket is closed: shutdown waits on it for the clients to leave.
    pub sessions: TaskTracker,
}

#[derive(Clone)]
pub struct App(Arc<AppInner>);

impl Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

pub struct AppParts {
    pub cfg: Config,
    pub store: Store,
    pub state: State,
    pub bus: Bus,
    pub auth: Auth,
    pub ws_url: String,
    pub tcp_addr: Option<String>,
    pub shutdown: CancellationToken,
}

impl App {
    pub fn new(p: AppParts) -> App {
        App(Arc::new(AppInner {
            ids: MsgIdGen::new(p.cfg.node_num),
            cfg: p.cfg,
            store: p.store,
            state: p.state,
            bus: p.bus,
            auth: p.auth,
            hub: Hub::default(),
            group_index: Default::default(),
            rooms: Default::default(),
            receipts: Default::default(),
            pipeline: Default::default(),
            known_users: Mutex::new(HashSet::new()),
            ws_url: p.ws_url,
            tcp_addr: p.tcp_addr,
            shutdown: p.shutdown,
            sessions: TaskTracker::new(),
        }))
    }

    pub fn node(&self) -> &str {
        &self.cfg.node
    }

    /// Whether a user exists (the system user always does).
    pub async fn user_exists(&self, user: UserId) -> crate::error::Result<bool> {
        if user == UserId::SYSTEM || self.known_users.lock().contains(&user) {
            return Ok(true);
        }
        let found = self.store.accounts().user_by_id(user).await?.is_some();
        if found {
            self.known_users.lock().insert(user);
        }
        Ok(found)
    }
}
