//! The rate-limit layer: every request's body counts against one [`RateLimiter`], under the
//! signing and retry layers, so each attempt (retries included) is paced.
//!
//! A transport that paces bodies itself (the stock one does) gets the limiter as a request
//! extension and takes tokens frame by frame as the body goes out; for any other transport the
//! layer takes a whole body's tokens before handing the request over.

use bytes::Bytes;

use crate::{Error, RateLimiter, ResponseBody, Transport};

/// A [`Transport`] whose request bodies go out at most at the limiter's rate.
///
/// Built by [`ClientBuilder::rate_limit`](crate::ClientBuilder::rate_limit); usable around any
/// transport:
///
/// ```
/// use ossup::{RateLimiter, RateLimited};
/// # #[derive(Debug)] struct MyTransport;
/// # #[async_trait::async_trait]
/// # impl ossup::Transport for MyTransport {
/// #     async fn send(&self, _r: http::Request<bytes::Bytes>) -> Result<http::Response<ossup::ResponseBody>, ossup::Error> { unimplemented!() }
/// #     fn reports_progress(&self) -> bool { false }
/// # }
/// let limited = RateLimited::new(MyTransport, RateLimiter::new(20 << 20));
/// assert_eq!(limited.limiter().bytes_per_sec(), 20 << 20);
/// ```
#[derive(Debug)]
pub struct RateLimited<T> {
    inner: T,
    limiter: RateLimiter,
}

impl<T> RateLimited<T> {
    /// `inner`, its request bodies paced by `limiter`.
    pub fn new(inner: T, limiter: RateLimiter) -> Self {
        Self { inner, limiter }
    }

    /// The limiter.
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }
}

#[async_trait::async_trait]
impl<T: Transport> Transport for RateLimited<T> {
    async fn send(
        &self,
        mut request: http::Request<Bytes>,
    ) -> Result<http::Response<ResponseBody>, Error> {
        if !request.body().is_empty() {
            if self.inner.paces_bodies() {
                request.extensions_mut().insert(self.limiter.clone());
            } else {
                self.limiter.acquire(request.body().len() as u64).await;
            }
        }
        self.inner.send(request).await
    }

    fn reports_progress(&self) -> bool {
        self.inner.reports_progress()
    }

    fn paces_bodies(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records when each request arrived (virtual time) and whether it carried a limiter.
    #[derive(Debug, Default)]
    struct Seen {
        arrivals: Mutex<Vec<(tokio::time::Instant, bool)>>,
        paces: bool,
    }

    /// A transport that only records, sharing its record with the test.
    #[derive(Debug)]
    struct Recording(Arc<Seen>);

    #[async_trait::async_trait]
    impl Transport for Recording {
        async fn send(
            &self,
            request: http::Request<Bytes>,
        ) -> Result<http::Response<ResponseBody>, Error> {
            let carried = request.extensions().get::<RateLimiter>().is_some();
            self.0
                .arrivals
                .lock()
                .unwrap()
                .push((tokio::time::Instant::now(), carried));
            Ok(http::Response::new(ResponseBody::empty()))
        }

        fn reports_progress(&self) -> bool {
            false
        }

        fn paces_bodies(&self) -> bool {
            self.0.paces
        }
    }

    fn body(len: usize) -> http::Request<Bytes> {
        http::Request::new(Bytes::from(vec![0u8; len]))
    }

    #[tokio::test(start_paused = true)]
    async fn a_transport_that_cannot_pace_gets_whole_bodies_at_the_cap() {
        let seen = Arc::new(Seen::default());
        let limited = RateLimited::new(Recording(seen.clone()), RateLimiter::new(1 << 20));
        let start = tokio::time::Instant::now();
        for _ in 0..4 {
            limited.send(body(1 << 20)).await.unwrap();
        }
        let arrivals = seen.arrivals.lock().unwrap().clone();
        let last = arrivals
            .last()
            .unwrap()
            .0
            .duration_since(start)
            .as_secs_f64();
        // Four MiB at 1 MiB/s: the last body may go once three and a bit seconds' worth is paid.
        assert!((3.0..4.0).contains(&last), "{last}");
        assert!(arrivals.iter().all(|(_, carried)| !carried));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pacing_transport_gets_the_limiter_and_no_wait() {
        let seen = Arc::new(Seen {
            paces: true,
            ..Seen::default()
        });
        let limited = RateLimited::new(Recording(seen.clone()), RateLimiter::new(1 << 20));
        let start = tokio::time::Instant::now();
        limited.send(body(8 << 20)).await.unwrap();
        limited.send(body(0)).await.unwrap();
        let arrivals = seen.arrivals.lock().unwrap().clone();
        assert_eq!(arrivals[0], (start, true));
        assert_eq!(arrivals[1], (start, false), "an empty body takes no tokens");
    }
}
