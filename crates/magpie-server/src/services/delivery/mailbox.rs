//! A connection's queue of outbound frames and pushes: bounded, many
//! senders, one receiver (the session).
//!
//! Why not a tokio channel: a bounded `mpsc` allocates its first block of
//! slots and its cache-padded state up front (about 1.8 KB per connection,
//! most of what an idle connection costs); this is a lock, a `VecDeque`
//! that allocates only once something is queued, and two `Notify`s. The
//! lock is held for a push or a pop, never across an await.

use super::hub::Outbound;
use parking_lot::Mutex;
use std::collections::VecDeque;
use tokio::sync::Notify;

pub struct Mailbox {
    inner: Mutex<Inner>,
    cap: usize,
    /// Wakes the session (a permit is kept if it is not waiting yet).
    arrived: Notify,
    /// Wakes senders waiting for room.
    room: Notify,
}

struct Inner {
    queue: VecDeque<Outbound>,
    closed: bool,
}

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The queue is at its bound: the session is not keeping up.
    Full,
    /// The session has ended.
    Closed,
}

/// A queue that grew past this many slots gives its memory back once empty.
const KEEP_SLOTS: usize = 64;

impl Mailbox {
    pub fn new(cap: usize) -> Mailbox {
        Mailbox {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                closed: false,
            }),
            cap: cap.max(1),
            arrived: Notify::new(),
            room: Notify::new(),
        }
    }

    /// Queues `out`, or gives it back with the reason.
    fn push(&self, out: Outbound) -> Result<(), (Refused, Outbound)> {
        let mut i = self.inner.lock();
        if i.closed {
            return Err((Refused::Closed, out));
        }
        if i.queue.len() >= self.cap {
            return Err((Refused::Full, out));
        }
        i.queue.push_back(out);
        drop(i);
        self.arrived.notify_one();
        Ok(())
    }

    /// Queues `out` if there is room.
    pub fn try_send(&self, out: Outbound) -> Result<(), Refused> {
        self.push(out).map_err(|(why, _)| why)
    }

    /// Queues `out`, waiting for room; `Err` once the session has ended.
    pub async fn send(&self, mut out: Outbound) -> Result<(), Refused> {
        loop {
            // Registered before looking, so room made meanwhile is not missed.
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.push(out) {
                Ok(()) => return Ok(()),
                Err((Refused::Closed, _)) => return Err(Refused::Closed),
                Err((Refused::Full, back)) => out = back,
            }
            room.await;
        }
    }

    /// The next item, if one is queued.
    pub fn try_recv(&self) -> Option<Outbound> {
        let mut i = self.inner.lock();
        let out = i.queue.pop_front();
        if i.queue.is_empty() && i.queue.capacity() > KEEP_SLOTS {
            i.queue = VecDeque::new();
        }
        drop(i);
        if out.is_some() {
            self.room.notify_waiters();
        }
        out
    }

    /// Waits for the next item. Cancel-safe (nothing is taken until it
    /// returns; a wake-up it did not use stays a permit).
    pub async fn recv(&self) -> Outbound {
        loop {
            if let Some(out) = self.try_recv() {
                return out;
            }
            self.arrived.notified().await;
        }
    }

    /// The session ended: refuse what comes, and wake waiting senders.
    pub fn close(&self) {
        let mut i = self.inner.lock();
        i.closed = true;
        i.queue = VecDeque::new();
        drop(i);
        self.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::Arc;
    use std::time::Duration;

    fn frame(n: u8) -> Outbound {
        Outbound::Frame(Bytes::from(vec![n]))
    }

    fn byte(o: Outbound) -> u8 {
        match o {
            Outbound::Frame(b) => b[0],
            _ => panic!("not a frame"),
        }
    }

    #[tokio::test]
    async fn bounded_in_order_and_closable() {
        let m = Mailbox::new(2);
        m.try_send(frame(1)).unwrap();
        m.try_send(frame(2)).unwrap();
        assert_eq!(m.try_send(frame(3)), Err(Refused::Full));
        assert_eq!(byte(m.recv().await), 1);
        m.try_send(frame(3)).unwrap();
        assert_eq!(byte(m.try_recv().unwrap()), 2);
        assert_eq!(byte(m.recv().await), 3);
        m.close();
        assert_eq!(m.try_send(frame(4)), Err(Refused::Closed));
    }

    #[tokio::test]
    async fn a_waiting_sender_gets_room_or_learns_of_the_close() {
        let m = Arc::new(Mailbox::new(1));
        m.try_send(frame(1)).unwrap();
        let m2 = m.clone();
        let waiting = tokio::spawn(async move { m2.send(frame(2)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "no room yet");
        assert_eq!(byte(m.recv().await), 1);
        waiting.await.unwrap().unwrap();
        assert_eq!(byte(m.recv().await), 2);

        m.try_send(frame(3)).unwrap();
        let m2 = m.clone();
        let waiting = tokio::spawn(async move { m2.send(frame(4)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        m.close();
        assert_eq!(waiting.await.unwrap(), Err(Refused::Closed));
    }

    /// A receiver waiting before anything arrives is woken by the send.
    #[tokio::test]
    async fn recv_waits_for_a_send() {
        let m = Arc::new(Mailbox::new(4));
        let m2 = m.clone();
        let r = tokio::spawn(async move { byte(m2.recv().await) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        m.try_send(frame(7)).unwrap();
        assert_eq!(r.await.unwrap(), 7);
    }
}
