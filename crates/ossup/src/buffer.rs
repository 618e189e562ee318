//! A pool of part buffers: at most `capacity` alive at once, reused from part to part.
//!
//! This is where the memory bound lives: whatever a scheduler does, a part cannot be read before a
//! buffer is free.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Hands out part buffers, at most `capacity` at once.
#[derive(Debug)]
pub(crate) struct BufferPool {
    permits: Arc<Semaphore>,
    free: Mutex<Vec<BytesMut>>,
    alive: AtomicUsize,
    peak: AtomicUsize,
}

impl BufferPool {
    /// A pool of at most `capacity` buffers.
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(capacity.max(1))),
            free: Mutex::new(Vec::new()),
            alive: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        })
    }

    /// Waits for a buffer and returns it with `len` bytes (contents unspecified).
    pub(crate) async fn acquire(self: &Arc<Self>, len: usize) -> PartBuffer {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // Every buffer is in flight: the source is read faster than parts go out.
                tracing::trace!(len, "waiting for a part buffer");
                let waiting_since = std::time::Instant::now();
                let permit = self
                    .permits
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the pool's semaphore is never closed");
                tracing::trace!(
                    waited_ms = waiting_since.elapsed().as_millis() as u64,
                    "got a part buffer"
                );
                permit
            }
        };
        let now = self.alive.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let mut buf = self
            .free
            .lock()
            .expect("buffer pool lock")
            .pop()
            .unwrap_or_default();
        // Growing zero-fills only the new tail: a reused buffer of the same size costs nothing.
        buf.resize(len, 0);
        PartBuffer {
            buf: Some(buf),
            pool: self.clone(),
            _permit: permit,
        }
    }

    /// The most buffers that were alive at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// A buffer on loan from the pool; returned when dropped.
#[derive(Debug)]
pub(crate) struct PartBuffer {
    buf: Option<BytesMut>,
    pool: Arc<BufferPool>,
    _permit: OwnedSemaphorePermit,
}

impl PartBuffer {
    /// The bytes to fill.
    pub(crate) fn as_mut(&mut self) -> &mut [u8] {
        self.buf.as_mut().expect("buffer present until frozen")
    }

    /// Keeps the first `len` bytes: a stream's last part ends before its planned size.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.buf
            .as_mut()
            .expect("buffer present until frozen")
            .truncate(len);
    }

    /// The filled bytes, to send; give them back with [`reclaim`](Self::reclaim) when the request is
    /// done so the allocation is reused.
    pub(crate) fn freeze(&mut self) -> Bytes {
        self.buf.take().expect("buffer frozen once").freeze()
    }

    /// Takes back bytes from [`freeze`](Self::freeze); when a transport still holds a reference, the
    /// allocation is left to it and a new one is made next time.
    pub(crate) fn reclaim(&mut self, bytes: Bytes) {
        if let Ok(buf) = bytes.try_into_mut() {
            self.buf = Some(buf);
        }
    }
}

impl Drop for PartBuffer {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            self.pool.free.lock().expect("buffer pool lock").push(buf);
        }
        self.pool.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn no_more_than_capacity_buffers_are_alive() {
        let pool = BufferPool::new(2);
        let a = pool.acquire(10).await;
        let _b = pool.acquire(10).await;
        let third = tokio::time::timeout(Duration::from_millis(50), pool.acquire(10)).await;
        assert!(third.is_err(), "a third buffer was handed out");
        drop(a);
        let _c = pool.acquire(10).await;
        assert_eq!(pool.peak(), 2);
    }

    #[tokio::test]
    async fn buffers_are_reused_after_reclaim() {
        let pool = BufferPool::new(1);
        let mut lease = pool.acquire(1000).await;
        let ptr = lease.as_mut().as_ptr();
        let bytes = lease.freeze();
        lease.reclaim(bytes);
        drop(lease);
        let mut again = pool.acquire(1000).await;
        assert_eq!(again.as_mut().as_ptr(), ptr);
    }
}
