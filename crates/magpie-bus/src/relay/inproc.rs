//! The in-process relay (`mem://[NAME]`): one broadcast channel per subject
//! in a hub shared by every relay of that NAME in this process.
//!
//! A broadcast channel never makes the sender wait: a subscriber that falls
//! `capacity` frames behind loses the oldest and is told so (`Lagged`),
//! which becomes a `Gap`.

use super::{RawEvent, RawSubscription, RelayBackend};
use crate::Result;
use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Weak};
use tokio::sync::broadcast;

/// Live hubs by name; an entry dies with the last relay using it.
static HUBS: LazyLock<Mutex<HashMap<String, Weak<Hub>>>> = LazyLock::new(Default::default);

struct Hub {
    /// Set by the relay that created the hub; later openers share it.
    capacity: usize,
    subjects: Mutex<HashMap<String, broadcast::Sender<Bytes>>>,
}

/// A relay backend over one in-process hub.
pub struct MemRelay {
    hub: Arc<Hub>,
}

impl MemRelay {
    /// Joins (creating) the hub `name` of this process.
    pub fn open(name: &str, capacity: usize) -> MemRelay {
        let mut hubs = HUBS.lock();
        hubs.retain(|_, h| h.strong_count() > 0);
        if let Some(hub) = hubs.get(name).and_then(Weak::upgrade) {
            return MemRelay { hub };
        }
        let hub = Arc::new(Hub {
            capacity,
            subjects: Mutex::new(HashMap::new()),
        });
        hubs.insert(name.to_string(), Arc::downgrade(&hub));
        MemRelay { hub }
    }
}

#[async_trait]
impl RelayBackend for MemRelay {
    fn send(&self, subject: &str, frame: Bytes) -> Result<()> {
        let mut subjects = self.hub.subjects.lock();
        // No receiver left: nobody listens, so forget the channel.
        let unheard = subjects
            .get(subject)
            .is_some_and(|tx| tx.send(frame).is_err());
        if unheard {
            subjects.remove(subject);
        }
        Ok(())
    }

    async fn subscribe(&self, subject: &str) -> Result<Box<dyn RawSubscription>> {
        let rx = self
            .hub
            .subjects
            .lock()
            .entry(subject.to_string())
            .or_insert_with(|| broadcast::channel(self.hub.capacity).0)
            .subscribe();
        Ok(Box::new(MemSubscription {
            rx,
            _hub: self.hub.clone(),
        }))
    }

    async fn flush(&self) -> Result<()> {
        // Sending is synchronous: nothing is ever in flight.
        Ok(())
    }
}

struct MemSubscription {
    rx: broadcast::Receiver<Bytes>,
    /// Keeps the hub (and the channel's sender) alive while subscribed.
    _hub: Arc<Hub>,
}

#[async_trait]
impl RawSubscription for MemSubscription {
    async fn recv(&mut self) -> Option<RawEvent> {
        match self.rx.recv().await {
            Ok(frame) => Some(RawEvent::Frame(frame)),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(RawEvent::Lost),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}
