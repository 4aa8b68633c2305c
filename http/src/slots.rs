//! Connection slots: a cap on open connections that never locks a well-behaved client out.
//! The daemon's socket and TCP API and the sync server each keep one.
//!
//! Every connection takes a slot. When all are taken, the next connection still gets in: an
//! open connection is evicted to make room, chosen in this order: idle ones that never sent
//! a complete request first, then idle ones that did, then busy ones (a request in hand, an
//! event stream, a held live pull); the idlest of its kind. So a flood of silent or
//! head-less connections can only evict its own kind. Activity is noted by [`Tracked`],
//! which wraps the connection's stream.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// The open connections of one listener.
pub struct Slots {
    max: usize,
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
}

/// What a connection's slot knows about it.
pub struct Activity {
    epoch: Instant,
    /// Microseconds from the epoch to the last byte read or written.
    last: AtomicU64,
    /// Requests or streams in hand.
    busy: AtomicUsize,
    /// Whether a complete request ever arrived (head-less connections are evicted first).
    served: AtomicBool,
    evict: Notify,
}

impl Activity {
    fn touch(&self) {
        let now = self.epoch.elapsed().as_micros() as u64;
        self.last.store(now, Ordering::Relaxed);
    }

    /// Asks the connection's task to close it (as an eviction does).
    pub fn close(&self) {
        self.evict.notify_one();
    }

    /// Marks the connection busy until the guard drops.
    pub fn busy(self: &Arc<Self>) -> BusyGuard {
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.served.store(true, Ordering::Relaxed);
        BusyGuard(self.clone())
    }
}

/// See [`Activity::busy`].
pub struct BusyGuard(Arc<Activity>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A connection's slot; dropping it frees the slot.
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
    activity: Arc<Activity>,
}

impl Slots {
    pub fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max: max.max(1),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a new connection, evicting the idlest open one if all are taken. Returns
    /// whether one was evicted.
    pub fn admit(self: &Arc<Self>) -> (Slot, bool) {
        let activity = Arc::new(Activity {
            epoch: self.epoch,
            last: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            evict: Notify::new(),
        });
        activity.touch();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut evicted = false;
        if open.len() >= self.max {
            let idlest = open
                .iter()
                .min_by_key(|(_, a)| {
                    let busy = a.busy.load(Ordering::Relaxed) > 0;
                    let served = a.served.load(Ordering::Relaxed);
                    (busy, served, a.last.load(Ordering::Relaxed))
                })
                .map(|(id, _)| *id);
            if let Some(victim) = idlest.and_then(|id| open.remove(&id)) {
                // notify_one keeps a permit, so the connection sees it even if it is not
                // waiting right now.
                victim.close();
                evicted = true;
            }
        }
        open.insert(id, activity.clone());
        drop(open);
        let slot = Slot {
            slots: self.clone(),
            id,
            activity,
        };
        (slot, evicted)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Slot {
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    /// Resolves when this connection was evicted to make room for a new one.
    pub async fn evicted(&self) {
        self.activity.evict.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        open.remove(&self.id);
    }
}

/// A connection's stream: notes every read and write in its slot's [`Activity`], and can
/// put back a byte that was read ahead (to tell the dialect).
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    unread: Option<u8>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Tracked {
            inner,
            activity,
            unread: None,
        }
    }

    /// Puts `byte` back: the next read returns it first.
    pub fn unread(mut self, byte: u8) -> Self {
        self.unread = Some(byte);
        self
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() > 0 {
            if let Some(byte) = self.unread.take() {
                buf.put_slice(&[byte]);
                return Poll::Ready(Ok(()));
            }
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_full_house_evicts_the_idlest_and_spares_the_busy() {
        let slots = Slots::new(2);
        let (busy, _) = slots.admit();
        let _working = busy.activity().busy();
        let (idle, _) = slots.admit();
        std::thread::sleep(Duration::from_millis(2));
        busy.activity().touch();
        let (newcomer, evicted) = slots.admit();
        assert!(evicted);
        assert_eq!(slots.len(), 2);
        // The idle one is told; it sees the notice even though it was not waiting.
        tokio::time::timeout(Duration::from_secs(1), idle.evicted())
            .await
            .expect("the idle connection is evicted");
        drop(idle);
        assert_eq!(slots.len(), 2);
        drop(newcomer);
        assert_eq!(slots.len(), 1);
    }

    #[tokio::test]
    async fn a_byte_put_back_is_read_first() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let slots = Slots::new(1);
        let (slot, _) = slots.admit();
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"ET /").await.unwrap();
        let mut stream = Tracked::new(server, slot.activity().clone()).unread(b'G');
        let mut line = [0u8; 5];
        stream.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"GET /");
    }

    #[tokio::test]
    async fn head_less_connections_go_before_those_that_sent_a_request() {
        let slots = Slots::new(2);
        let (served, _) = slots.admit();
        drop(served.activity().busy());
        std::thread::sleep(Duration::from_millis(2));
        let (silent, _) = slots.admit();
        // The silent one is newer, so less idle; it still goes first.
        let (_newcomer, evicted) = slots.admit();
        assert!(evicted);
        tokio::time::timeout(Duration::from_secs(1), silent.evicted())
            .await
            .expect("the head-less connection is evicted");
        assert!(
            tokio::time::timeout(Duration::from_millis(20), served.evicted())
                .await
                .is_err(),
            "the connection that sent a request stays"
        );
    }

    #[tokio::test]
    async fn below_the_cap_nobody_is_evicted() {
        let slots = Slots::new(3);
        let (_a, e1) = slots.admit();
        let (_b, e2) = slots.admit();
        assert!(!e1 && !e2);
    }
}
