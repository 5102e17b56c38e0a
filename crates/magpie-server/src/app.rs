//! The composition of one node: configuration, credentials, the backends
//! (as handles over traits) and the services built on them
//! (`crate::services`). Cheap to clone. Edge, conn, workers and cluster
//! reach the services through it.
//!
//! Invariant: nothing here names a concrete backend; the composition root
//! (`crate::start`) picks them from configuration URLs.

use crate::auth::Auth;
use crate::config::Config;
use crate::guard::Guard;
use crate::services::alarms::Alarms;
use crate::services::messaging::MessagingParts;
use crate::services::{
    Delivery, Events, Feeds, Groups, Messaging, Presence, Rooms, Search, Traces, Typing, Users,
};
use magpie_bus::{Bus, Relay};
use magpie_core::MsgIdGen;
use magpie_store::{State, Store};
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub struct AppInner {
    pub cfg: Arc<Config>,
    /// Accounts, tokens and settings (the edge's account routes, auth).
    pub store: Store,
    /// Tickets, routes and the node registry (conn, cluster).
    pub state: State,
    pub events: Events,
    pub auth: Auth,
    pub users: Arc<Users>,
    pub messaging: Arc<Messaging>,
    pub groups: Arc<Groups>,
    pub feeds: Arc<Feeds>,
    pub delivery: Arc<Delivery>,
    pub presence: Arc<Presence>,
    pub rooms: Arc<Rooms>,
    pub search: Arc<Search>,
    pub typing: Arc<Typing>,
    /// This node's message hops (`services/trace`).
    pub traces: Arc<Traces>,
    /// Worker groups paused here by an operator (`workers/paused.rs`).
    pub paused: crate::workers::Paused,
    /// This node's recent alarms, for the console (`services/alarms.rs`).
    pub alarms: Arc<Alarms>,
    /// An operator drains this node (`cluster/drain.rs`): new connections
    /// go to other nodes while any is not draining.
    pub draining: AtomicBool,
    /// Limits, bans and access events (docs/edge.md).
    pub guard: Arc<Guard>,
    /// The best-effort relay (access events reach the detector through it).
    pub relay: Relay,
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
    pub relay: Relay,
    pub auth: Auth,
    pub ws_url: String,
    pub tcp_addr: Option<String>,
    pub shutdown: CancellationToken,
    /// This node's search index (role `search`), opened by `start`.
    pub search: Option<magpie_search::SearchIndex>,
}

impl App {
    /// Builds the services, each with the handles it owns.
    pub fn new(p: AppParts) -> App {
        let cfg = Arc::new(p.cfg);
        let ids = Arc::new(MsgIdGen::new(cfg.node_num));
        let events = Events::new(p.bus, p.shutdown.clone());
        let users = Arc::new(Users::new(p.store.clone(), cfg.limits.known_users));
        let (guard, drain) = Guard::new(
            &cfg.guard,
            p.state.clone(),
            p.relay.clone(),
            p.shutdown.clone(),
        );
        tokio::spawn(drain);
        let guard = Arc::new(guard);
        let traces = Arc::new(Traces::new(&cfg.node, &cfg.trace, p.relay.clone()));
        let delivery = Arc::new(Delivery::new(
            cfg.clone(),
            p.store.clone(),
            p.state.clone(),
            p.relay.clone(),
            ids.clone(),
            traces.clone(),
        ));
        let alarms = Arc::new(Alarms::default());
        let messaging = Arc::new(Messaging::new(MessagingParts {
            cfg: cfg.clone(),
            store: p.store.clone(),
            state: p.state.clone(),
            events: events.clone(),
            ids: ids.clone(),
            users: users.clone(),
            delivery: delivery.clone(),
            traces: traces.clone(),
            alarms: alarms.clone(),
        }));
        let groups = Arc::new(Groups::new(
            cfg.clone(),
            p.store.clone(),
            events.clone(),
            users.clone(),
            messaging.clone(),
        ));
        let presence = Arc::new(Presence::new(
            cfg.node.clone(),
            p.store.clone(),
            p.state.clone(),
            &cfg.presence,
            delivery.clone(),
        ));
        let rooms = Arc::new(Rooms::new(
            cfg.clone(),
            ids.clone(),
            p.state.clone(),
            delivery.clone(),
        ));
        let feeds = Arc::new(Feeds::new(
            cfg.clone(),
            p.store.clone(),
            p.state.clone(),
            events.clone(),
            users.clone(),
            ids.clone(),
        ));
        let search = Arc::new(Search::new(cfg.clone(), p.store.clone(), p.search));
        let typing = Arc::new(Typing::new(
            cfg.typing.clone(),
            groups.clone(),
            delivery.clone(),
            guard.clone(),
            users.clone(),
        ));
        App(Arc::new(AppInner {
            cfg,
            store: p.store,
            state: p.state,
            events,
            auth: p.auth,
            users,
            messaging,
            groups,
            feeds,
            delivery,
            presence,
            rooms,
            search,
            typing,
            traces,
            paused: Default::default(),
            alarms,
            draining: AtomicBool::new(false),
            guard,
            relay: p.relay,
            ws_url: p.ws_url,
            tcp_addr: p.tcp_addr,
            shutdown: p.shutdown,
            sessions: TaskTracker::new(),
        }))
    }

    pub fn node(&self) -> &str {
        &self.cfg.node
    }
}
