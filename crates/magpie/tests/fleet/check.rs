//! What the fault tests check once the load has run: every message reached
//! the peer's application exactly once, is stored exactly once at the
//! sequence it was acknowledged with, and unread counts equal the store.

use super::load::{Ledger, Load, Member, lock};
use crate::common::unread_truth;
use magpie_core::{ClientMsgId, ConvId, Seq};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

impl Load {
    /// Waits until every member's application has every message its peer sent.
    pub async fn wait_delivered(&self, deadline: Duration) {
        let until = Instant::now() + deadline;
        loop {
            let missing: usize = self.members.iter().map(|m| self.missing(m).len()).sum();
            if missing == 0 {
                return;
            }
            if Instant::now() >= until {
                let detail: Vec<String> = self.members.iter().map(|m| self.describe(m)).collect();
                panic!(
                    "{missing} messages never reached the application:\n{}",
                    detail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Where a member stands, for failure messages.
    fn describe(&self, m: &Member) -> String {
        let missing = self.missing(m);
        let l = lock(&self.ledger);
        let mut seqs: Vec<Seq> = missing
            .iter()
            .filter_map(|c| l.acked.get(c).map(|a| a.1))
            .collect();
        seqs.sort_unstable();
        let got = lock(&m.received).len();
        format!(
            "{} on {}: received {got}, missing {} (acked seqs {:?}...), positions {:?}, unavailable {:?}",
            m.id,
            m.client.welcome().node,
            missing.len(),
            &seqs[..seqs.len().min(8)],
            m.client.positions(),
            lock(&m.unavailable)
        )
    }

    fn missing(&self, m: &Member) -> Vec<ClientMsgId> {
        let got: HashSet<ClientMsgId> = lock(&m.received).iter().map(|x| x.cmid).collect();
        lock(&self.ledger)
            .sent
            .iter()
            .filter(|(c, (from, _, _))| *from == m.peer && !got.contains(c))
            .map(|(c, _)| *c)
            .collect()
    }

    /// Exactly once to the application, stored exactly once, sequences
    /// contiguous and never reused, each acknowledgement true.
    pub async fn check(&self, store: &magpie_store::Store) {
        // A snapshot: no lock is held across the store reads below.
        let ledger = {
            let l = lock(&self.ledger);
            Ledger {
                sent: l.sent.clone(),
                acked: l.acked.clone(),
                errors: l.errors.clone(),
                skipped: l.skipped,
                slowest_ack: l.slowest_ack,
            }
        };
        for cmid in ledger.sent.keys() {
            assert!(ledger.acked.contains_key(cmid), "{cmid} never acknowledged");
        }
        for e in &ledger.errors {
            assert!(e.1, "a send failed with a non-retryable error: {}", e.0);
        }
        for m in &self.members {
            let conv = ConvId::direct(m.id, m.peer);
            let got = lock(&m.received).clone();
            let gone = lock(&m.unavailable).clone();
            assert!(gone.is_empty(), "{} was told {gone:?} are gone", m.id);
            let mut cmids = HashSet::new();
            let mut seqs = HashSet::new();
            for msg in &got {
                assert_eq!(msg.conv, conv);
                assert!(
                    cmids.insert(msg.cmid),
                    "{} delivered twice to {}",
                    msg.cmid,
                    m.id
                );
                assert!(
                    seqs.insert(msg.seq),
                    "seq {} delivered twice to {}",
                    msg.seq,
                    m.id
                );
                assert_eq!(
                    ledger.acked.get(&msg.cmid),
                    Some(&(conv.clone(), msg.seq)),
                    "delivered at another sequence than acknowledged"
                );
            }
            // The member's own sends plus what it received: 1..=N, each once.
            let mut all: Vec<Seq> = seqs.into_iter().collect();
            all.extend(
                ledger
                    .sent
                    .iter()
                    .filter(|(_, (f, _, _))| *f == m.id)
                    .map(|(c, _)| ledger.acked[c].1),
            );
            all.sort_unstable();
            let n = all.len() as Seq;
            assert_eq!(all, (1..=n).collect::<Vec<Seq>>(), "sequences of {conv}");
            // The store holds the same N messages, each once.
            let mut stored = Vec::new();
            let mut after = 0;
            loop {
                let page = store
                    .messages()
                    .messages_after(m.id, &conv, after, 500)
                    .await
                    .unwrap();
                let Some(last) = page.last() else { break };
                after = last.seq;
                stored.extend(page);
            }
            let stored_seqs: Vec<Seq> = stored.iter().map(|x| x.seq).collect();
            assert_eq!(stored_seqs, (1..=n).collect::<Vec<Seq>>(), "stored {conv}");
            let stored_cmids: HashSet<ClientMsgId> = stored.iter().map(|x| x.cmid).collect();
            assert_eq!(
                stored_cmids.len(),
                stored.len(),
                "a message stored twice in {conv}"
            );
            for x in &stored {
                assert_eq!(ledger.acked.get(&x.cmid), Some(&(conv.clone(), x.seq)));
            }
        }
    }

    /// Unread per member as the cluster answers it equals the store's truth.
    pub async fn check_unread(&self, store: &magpie_store::Store) {
        for m in &self.members {
            let truth: i64 = unread_truth(store, m.id).await;
            let answered = m.client.unread().await.unwrap().total;
            assert_eq!(answered, truth, "unread of {}", m.id);
        }
    }

    pub fn report(&self, started: Instant, what: &str) -> String {
        let l = lock(&self.ledger);
        let reconnects: u64 = self
            .members
            .iter()
            .map(|m| m.reconnects.load(Ordering::Relaxed))
            .sum();
        let mut why: HashMap<String, usize> = HashMap::new();
        for m in &self.members {
            for r in lock(&m.reasons).iter() {
                *why.entry(r.chars().take(60).collect()).or_default() += 1;
            }
        }
        let retryable = l.errors.iter().filter(|e| e.1).count();
        let mut kinds: HashMap<String, usize> = HashMap::new();
        for (e, _) in &l.errors {
            *kinds.entry(e.chars().take(60).collect()).or_default() += 1;
        }
        let mut kinds: Vec<(String, usize)> = kinds.into_iter().collect();
        kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
        kinds.truncate(4);
        format!(
            "{what}: {} messages sent by {} clients in {:.1}s, {} failed attempts ({} retryable; most common {kinds:?}), {} ticks skipped, slowest acknowledgement {:.1}s, {} reconnects ({why:?})",
            l.sent.len(),
            self.members.len(),
            started.elapsed().as_secs_f64(),
            l.errors.len(),
            retryable,
            l.skipped,
            l.slowest_ack.as_secs_f64(),
            reconnects
        )
    }
}
