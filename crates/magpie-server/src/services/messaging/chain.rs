//! Client ordering chains (docs/protocol.md, "Ordering chain"): a device
//! gives each message a chain id and the id of its next one; the fast state
//! keeps, per (user, device), the id expected next, and this module makes a
//! device's chained sends durable in chain order, however they arrive.
//!
//! Invariants:
//! - A chain advances (`chain_advance`, compare-and-set `id → next`) only
//!   after its link's send was answered by the pipeline, i.e. after the
//!   store committed it (and the bus took it). A successor is let through
//!   only once the chain names it, so it is submitted after its
//!   predecessor's commit and gets a larger sequence in any conversation.
//! - Un-chained sends never come here (`send.rs`): no state read, no lock.
//! - A held send waits on a per-(user, device) `Notify` (woken by an advance
//!   on this node) and re-reads the state every `chain.poll_ms` (advances on
//!   other nodes); no lock is held across an `.await`.
//! - A chain the state lost (or never had) reads as absent: the send is
//!   accepted and the chain restarts at its `next`. Ordering is broken only
//!   across the loss; nothing is lost.
//! - Gaps per device are counted on this node (`Offenders`); the count is
//!   the hook a ban rule can read ([`Messaging::chain_offences`]).

use super::Messaging;
use super::send::SendDefaults;
use super::send::SendInput;
use crate::config::{ChainConfig, OnGap};
use crate::error::{Result, ServerError};
use crate::metrics as m;
use magpie_core::{Accepted, ChainLink, ClientMsgId, DeviceId, UserId};
use magpie_store::ChainAdvance;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

type Key = (UserId, DeviceId);

/// Devices with an offence record kept before idle ones are swept.
const OFFENDERS_SWEEP_AT: usize = 100_000;

/// The node's chain bookkeeping: who is held, and who left gaps.
#[derive(Default)]
pub(super) struct Chains {
    held: Mutex<HashMap<Key, Held>>,
    offenders: Mutex<HashMap<Key, Offender>>,
}

/// The sends of one device held on this node.
#[derive(Default)]
struct Held {
    notify: Arc<Notify>,
    /// (id, next) of every held send.
    links: Vec<(String, String)>,
}

/// A device's gaps (and refusals) in the current window, and its penalty.
struct Offender {
    window_start: Instant,
    strikes: u32,
    penalty_until: Option<Instant>,
    /// Every gap and refusal since this record was created: the ban hook.
    offences: u32,
    last: Instant,
}

/// A held send's place among the held ones; leaves it when dropped (also
/// when the request is dropped mid-wait).
struct HoldGuard<'a> {
    chains: &'a Chains,
    key: Key,
    link: ChainLink,
    notify: Arc<Notify>,
}

impl Drop for HoldGuard<'_> {
    fn drop(&mut self) {
        let mut held = self.chains.held.lock();
        if let Some(h) = held.get_mut(&self.key) {
            if let Some(i) = h
                .links
                .iter()
                .position(|(id, next)| *id == self.link.id && *next == self.link.next)
            {
                h.links.swap_remove(i);
            }
            if h.links.is_empty() {
                held.remove(&self.key);
            }
        }
    }
}

impl HoldGuard<'_> {
    /// Whether another send held here is this one's predecessor (its `next`
    /// is this one's id): then this one lets it go first.
    fn predecessor_held(&self) -> bool {
        let held = self.chains.held.lock();
        held.get(&self.key)
            .is_some_and(|h| h.links.iter().any(|(_, next)| *next == self.link.id))
    }
}

impl Chains {
    fn hold(&self, key: Key, link: &ChainLink) -> HoldGuard<'_> {
        let notify = {
            let mut held = self.held.lock();
            let h = held.entry(key.clone()).or_default();
            h.links.push((link.id.clone(), link.next.clone()));
            Arc::clone(&h.notify)
        };
        HoldGuard {
            chains: self,
            key,
            link: link.clone(),
            notify,
        }
    }

    /// Wakes the sends of `key` held here (the chain moved).
    fn wake(&self, key: &Key) {
        let notify = self.held.lock().get(key).map(|h| Arc::clone(&h.notify));
        if let Some(n) = notify {
            n.notify_waiters();
        }
    }

    /// Refuses a chained send at once if the device is over its gap limit
    /// (`chain_slow_down`); a refusal counts as a strike, so a device that
    /// does not slow down reaches twice the limit and its penalty.
    fn admit(&self, key: &Key, cfg: &ChainConfig) -> Result<()> {
        if cfg.gap_limit == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut offenders = self.offenders.lock();
        let Some(o) = offenders.get_mut(key) else {
            return Ok(());
        };
        if let Some(until) = o.penalty_until.filter(|u| *u > now) {
            // Sending on during the penalty is an offence too (not a strike:
            // the penalty does not grow).
            o.offences += 1;
            o.last = now;
            m_refused("penalty");
            return Err(slow_down(
                "chained sends refused: too many chain gaps",
                until - now,
            ));
        }
        o.penalty_until = None;
        o.roll(now, cfg);
        if o.strikes < cfg.gap_limit {
            return Ok(());
        }
        o.strikes += 1;
        o.offences += 1;
        o.last = now;
        if o.strikes > 2 * cfg.gap_limit {
            let penalty = Duration::from_millis(cfg.penalty_ms);
            o.penalty_until = Some(now + penalty);
            (o.window_start, o.strikes) = (now, 0);
            // The hook for a later ban rule: one event per penalty.
            tracing::warn!(
                target: "magpie::chain::offence",
                user = key.0.0,
                device = %key.1,
                offences = o.offences,
                penalty_ms = cfg.penalty_ms,
                "chain penalty: chained sends refused"
            );
            m_refused("penalty");
            return Err(slow_down(
                "chained sends refused: too many chain gaps",
                penalty,
            ));
        }
        let window_left = (o.window_start + Duration::from_millis(cfg.gap_window_ms))
            .saturating_duration_since(now);
        m_refused("slow_down");
        Err(slow_down("too many chain gaps: slow down", window_left))
    }

    /// Counts one gap of `key`.
    fn gap(&self, key: &Key, cfg: &ChainConfig) {
        let now = Instant::now();
        let mut offenders = self.offenders.lock();
        if offenders.len() >= OFFENDERS_SWEEP_AT && !offenders.contains_key(key) {
            let idle = Duration::from_millis(cfg.gap_window_ms.max(cfg.penalty_ms));
            offenders.retain(|_, o| {
                now.saturating_duration_since(o.last) < idle
                    || o.penalty_until.is_some_and(|u| u > now)
            });
        }
        let o = offenders.entry(key.clone()).or_insert(Offender {
            window_start: now,
            strikes: 0,
            penalty_until: None,
            offences: 0,
            last: now,
        });
        o.roll(now, cfg);
        o.strikes += 1;
        o.offences += 1;
        o.last = now;
    }

    fn offences(&self, key: &Key) -> u32 {
        self.offenders.lock().get(key).map_or(0, |o| o.offences)
    }
}

impl Offender {
    /// Starts a new window once the current one is over.
    fn roll(&mut self, now: Instant, cfg: &ChainConfig) {
        if now.saturating_duration_since(self.window_start)
            >= Duration::from_millis(cfg.gap_window_ms)
        {
            (self.window_start, self.strikes) = (now, 0);
        }
    }
}

fn slow_down(why: &'static str, wait: Duration) -> ServerError {
    ServerError::ChainSlowDown {
        why,
        retry_after_ms: (wait.as_millis() as u64).max(1),
    }
}

fn m_refused(why: &'static str) {
    metrics::counter!(m::CHAIN_REFUSED, "why" => why).increment(1);
}

/// How a link moves the chain once its send is answered.
struct Move<'a> {
    /// The id the chain must still expect for the move to happen (`None`:
    /// leave the chain alone).
    expect: Option<&'a str>,
    /// If no chain is stored, start one at the link's `next`.
    restart: bool,
}

impl Messaging {
    /// The id this device's next chained send must carry; starts the chain
    /// (a fresh UUIDv7) if the state has none (docs/protocol.md, `chain`).
    pub async fn chain_next(&self, user: UserId, device: &DeviceId) -> Result<String> {
        let fresh = uuid::Uuid::now_v7().to_string();
        Ok(self
            .state
            .chain_init(user, device, &fresh, self.chain_ttl_ms())
            .await?)
    }

    /// Gaps and refused chained sends of (user, device) recorded on this
    /// node: what a ban rule can act on (each penalty also logs a
    /// `magpie::chain::offence` event). Forgotten after a quiet spell.
    pub fn chain_offences(&self, user: UserId, device: &DeviceId) -> u32 {
        self.chains.offences(&(user, device.clone()))
    }

    fn chain_ttl_ms(&self) -> u64 {
        self.cfg.chain.ttl_secs.saturating_mul(1000)
    }

    /// Sends one chained message: at once if the chain expects it (or has
    /// no state), else once its predecessor moved the chain to it, or when
    /// `chain.wait_ms` ran out (the gap alarm, then `chain.on_gap`).
    pub(super) async fn send_chained(
        &self,
        from: UserId,
        device: &DeviceId,
        defaults: SendDefaults,
        input: SendInput,
        link: ChainLink,
    ) -> Result<Accepted> {
        let cfg = &self.cfg.chain;
        let key = (from, device.clone());
        if let Err(e) = self.chains.admit(&key, cfg) {
            // A retry of a message accepted before is answered with the
            // original even while the device is slowed down: a retry
            // always returns the original result.
            if self.already_accepted(from, input.cmid).await? {
                let mv = Move {
                    expect: Some(&link.id),
                    restart: false,
                };
                return self.accept_link(&key, defaults, input, &link, mv).await;
            }
            return Err(e);
        }
        let first = match self.expected(from, device).await {
            Some(e) if e != link.id => e,
            // Its turn, or no chain (never started, expired, lost): accept.
            _ => {
                let mv = Move {
                    expect: Some(&link.id),
                    restart: true,
                };
                return self.accept_link(&key, defaults, input, &link, mv).await;
            }
        };
        // Not its turn: a retry of a message accepted before answers at
        // once with the original (and helps a chain whose advance was lost).
        if self.already_accepted(from, input.cmid).await? {
            let mv = Move {
                expect: Some(&link.id),
                restart: false,
            };
            return self.accept_link(&key, defaults, input, &link, mv).await;
        }
        metrics::counter!(m::CHAIN_HELD).increment(1);
        let guard = self.chains.hold(key.clone(), &link);
        let start = Instant::now();
        let deadline = start + Duration::from_millis(cfg.wait_ms);
        // A send whose predecessor is held here too waits for it up to
        // twice as long, so a skip keeps the held links in chain order.
        let hard_deadline = start + Duration::from_millis(cfg.wait_ms.saturating_mul(2));
        let poll = Duration::from_millis(cfg.poll_ms.max(1));
        let notify = Arc::clone(&guard.notify);
        let mut last: String;
        loop {
            // Registered before the read, so an advance between the read
            // and the wait still wakes this send.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.expected(from, device).await {
                Some(e) if e != link.id => last = e,
                _ => {
                    drop(guard);
                    let mv = Move {
                        expect: Some(&link.id),
                        restart: true,
                    };
                    return self.accept_link(&key, defaults, input, &link, mv).await;
                }
            }
            let now = Instant::now();
            if now >= hard_deadline || (now >= deadline && !guard.predecessor_held()) {
                break;
            }
            let _ = tokio::time::timeout(poll, &mut notified).await;
        }
        drop(guard);
        // The alarm: the predecessor never came.
        let action = match cfg.on_gap {
            OnGap::Skip => "skip",
            OnGap::Reject => "reject",
        };
        metrics::counter!(m::CHAIN_GAPS, "action" => action).increment(1);
        tracing::warn!(
            user = from.0,
            device = %device,
            expected = %last,
            id = %link.id,
            waited_ms = start.elapsed().as_millis() as u64,
            action,
            "chain gap: the predecessor never came"
        );
        self.alarms.raise(
            "chain_gap",
            format!(
                "user {} device {device}: link {} waited {} ms for {last}, which never came ({action})",
                from.0,
                link.id,
                start.elapsed().as_millis()
            ),
        );
        self.chains.gap(&key, cfg);
        match cfg.on_gap {
            OnGap::Reject => Err(ServerError::ChainGap(last)),
            // Skip: past the gap, the chain goes on from this link. If the
            // chain moved while this send waited, it is no gap but a late
            // link (its successors went ahead): it is accepted and the
            // chain left where it is.
            OnGap::Skip => {
                let mv = Move {
                    expect: (last == first).then_some(last.as_str()),
                    restart: false,
                };
                self.accept_link(&key, defaults, input, &link, mv).await
            }
        }
    }

    /// The id the chain expects; `None` if there is none or the state
    /// cannot be read (then the send goes through unordered, like after a
    /// loss of the state: ordering yields, delivery does not).
    async fn expected(&self, from: UserId, device: &DeviceId) -> Option<String> {
        match self.state.chain_get(from, device).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, user = from.0, "chain not readable: send unordered");
                None
            }
        }
    }

    /// Whether `cmid` of `from` was accepted before (fast path, then the
    /// store's durable key).
    async fn already_accepted(&self, from: UserId, cmid: ClientMsgId) -> Result<bool> {
        if let Ok(Some(_)) = self.state.idem_get(from, cmid).await {
            return Ok(true);
        }
        Ok(self
            .store
            .messages()
            .lookup_cmid(from, cmid)
            .await?
            .is_some())
    }

    /// Sends the link's message through the ordinary path, then moves the
    /// chain to its `next` if it was answered for good (accepted, also as a
    /// duplicate, or refused for a reason a retry cannot change); a
    /// retryable failure leaves the chain for the client's retry.
    async fn accept_link(
        &self,
        key: &Key,
        defaults: SendDefaults,
        input: SendInput,
        link: &ChainLink,
        mv: Move<'_>,
    ) -> Result<Accepted> {
        let (from, device) = (key.0, &key.1);
        let result = self
            .send_plain(from, Some(device), defaults, vec![input])
            .await
            .pop()
            .unwrap_or_else(|| Err(ServerError::Internal("send result missing".into())));
        let settled = match &result {
            Ok(_) => true,
            Err(e) => !e.code().retryable(),
        };
        if let Some(expect) = mv.expect.filter(|_| settled) {
            self.move_chain(key, link, expect, mv.restart).await;
        }
        result
    }

    async fn move_chain(&self, key: &Key, link: &ChainLink, expect: &str, restart: bool) {
        let (from, device) = (key.0, &key.1);
        let ttl = self.chain_ttl_ms();
        let moved = match self
            .state
            .chain_advance(from, device, expect, &link.next, ttl)
            .await
        {
            Ok(ChainAdvance::Advanced) => true,
            Ok(ChainAdvance::Absent) if restart => self
                .state
                .chain_init(from, device, &link.next, ttl)
                .await
                .map_err(|e| tracing::warn!(error = %e, user = from.0, "chain not restarted"))
                .is_ok(),
            // Someone else moved it (a retry, a skip): nothing to do.
            Ok(_) => false,
            Err(e) => {
                // The successor waits and meets a gap, or the client's retry
                // of this link moves the chain.
                tracing::warn!(error = %e, user = from.0, "chain not advanced");
                false
            }
        };
        if moved {
            self.chains.wake(key);
        }
    }
}
