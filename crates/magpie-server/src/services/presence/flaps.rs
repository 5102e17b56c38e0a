//! Presence flaps: a device that drops and comes back at once (a network
//! blip, an app resumed) should not show its contacts offline-then-online.
//! An offline change is held for `presence.debounce_ms`; if the device comes
//! online here meanwhile, both changes are dropped. A held change that comes
//! due is announced only if the device has no route by then: it may have come
//! back on another node (docs/protocol.md §5.7).

use magpie_core::{DeviceId, Presence, UserId};
use parking_lot::Mutex;
use std::collections::HashMap;
use tokio::time::Instant;

#[derive(Default)]
pub(super) struct Held(Mutex<HashMap<(UserId, DeviceId), (Presence, Instant)>>);

impl Held {
    /// Holds an offline change until `until` (a newer one replaces it).
    pub fn hold(&self, p: Presence, until: Instant) {
        self.0.lock().insert((p.user, p.device.clone()), (p, until));
    }

    /// The device came online: true if an offline change of it was held
    /// (and is now dropped, with the online change).
    pub fn cancel(&self, user: UserId, device: &DeviceId) -> bool {
        self.0.lock().remove(&(user, device.clone())).is_some()
    }

    /// The held changes due at `now`, taken out.
    pub fn due(&self, now: Instant) -> Vec<Presence> {
        let mut held = self.0.lock();
        let keys: Vec<_> = held
            .iter()
            .filter(|(_, (_, until))| *until <= now)
            .map(|(k, _)| k.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| held.remove(&k).map(|(p, _)| p))
            .collect()
    }

    /// Every held change, taken out (the node is closing).
    pub fn all(&self) -> Vec<Presence> {
        self.0.lock().drain().map(|(_, (p, _))| p).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn offline(user: i64, device: &str) -> Presence {
        Presence {
            user: UserId(user),
            device: DeviceId::new(device).unwrap(),
            online: false,
            node: "n".into(),
            at: 0,
            reason: None,
        }
    }

    #[test]
    fn a_comeback_cancels_and_the_rest_comes_due() {
        let held = Held::default();
        let now = Instant::now();
        held.hold(offline(1, "a"), now + Duration::from_millis(100));
        held.hold(offline(2, "b"), now + Duration::from_millis(300));
        assert!(held.cancel(UserId(1), &DeviceId::new("a").unwrap()));
        assert!(
            !held.cancel(UserId(1), &DeviceId::new("a").unwrap()),
            "once"
        );
        assert!(held.due(now + Duration::from_millis(200)).is_empty());
        let due = held.due(now + Duration::from_millis(300));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].user, UserId(2));
        assert!(held.all().is_empty());
    }
}
