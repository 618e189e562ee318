//! Progress reporting of one upload: events to the request's sink, notices to the outcome too, and
//! the bytes of the parts in flight as the transport hands them to the connection.
//!
//! The bytes in flight are read, not pushed: the transport adds each chunk it sends to the attempt's
//! [`TransferProgress`] (one atomic add), and a ticker reads the counters of the parts in flight
//! every [`SENDING_PERIOD`], so the hot path takes no lock.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::retry::RetryObserver;
use crate::{Notice, PartScheduler, PartSending, ProgressEvent, ProgressSink, TransferProgress};

/// How often the bytes of the parts in flight are reported, at most.
pub(super) const SENDING_PERIOD: Duration = Duration::from_millis(100);

/// Reports progress: one event at a time, `transferred + in_flight` never decreasing.
pub(super) struct Progress {
    sink: Option<Arc<dyn ProgressSink>>,
    totals: Mutex<Totals>,
    /// The scheduler sending the parts, whose current limit the events carry.
    scheduler: Option<Arc<dyn PartScheduler>>,
}

/// What has been reported, guarded by one lock so that events leave in the order of their figures.
#[derive(Default)]
struct Totals {
    /// Bytes acknowledged and recorded, reused ones included.
    transferred: u64,
    /// The parts whose requests are going out, by number, until their `PartDone`.
    in_flight: BTreeMap<u32, Flight>,
    /// `transferred + in_flight` as last reported, to stay quiet while nothing moves.
    reported: u64,
}

/// One part in flight.
struct Flight {
    /// The part's size.
    bytes: u64,
    /// The byte counter of the part's current attempt, once the retry layer has started one.
    attempt: Option<TransferProgress>,
    /// The furthest any attempt got: a retried attempt restarts its counter from zero, and the
    /// part's figure waits at this mark until the new attempt passes it.
    furthest: u64,
}

impl Totals {
    /// Reads the counters of the parts in flight, moving each part's furthest mark on.
    fn read_in_flight(&mut self) -> (u64, Vec<PartSending>) {
        let mut in_flight = 0;
        let mut parts = Vec::with_capacity(self.in_flight.len());
        for (&number, flight) in &mut self.in_flight {
            if let Some(attempt) = &flight.attempt {
                flight.furthest = flight.furthest.max(attempt.sent().min(flight.bytes));
            }
            in_flight += flight.furthest;
            parts.push(PartSending {
                number,
                sent: flight.furthest,
                bytes: flight.bytes,
            });
        }
        (in_flight, parts)
    }
}

impl Progress {
    /// Reports to `sink` (nowhere without one), starting from nothing transferred.
    pub(super) fn new(sink: Option<Arc<dyn ProgressSink>>) -> Self {
        Self {
            sink,
            totals: Mutex::new(Totals::default()),
            scheduler: None,
        }
    }

    /// Reports the current limit of `scheduler` in `PartDone` and `Sending`.
    pub(super) fn limited_by(mut self, scheduler: Arc<dyn PartScheduler>) -> Self {
        self.scheduler = Some(scheduler);
        self
    }

    /// The most parts the scheduler runs at once now (1 without one: a PutObject).
    fn concurrency(&self) -> u32 {
        self.scheduler
            .as_ref()
            .map_or(1, |s| u32::try_from(s.current_limit()).unwrap_or(u32::MAX))
    }

    /// Sends `event` to the sink.
    pub(super) fn emit(&self, event: ProgressEvent) {
        if let Some(sink) = &self.sink {
            sink.on_event(&event);
        }
    }

    /// Counts the `reused` bytes already on the server as transferred.
    pub(super) fn start_at(&self, reused: u64) {
        let mut totals = self.totals.lock().expect("progress lock");
        totals.transferred = reused;
        totals.reported = reused;
    }

    /// Reports part `number` done, moving its `bytes` from in flight to the total.
    pub(super) fn part_done(&self, number: u32, bytes: u64) {
        // The lock is held while emitting so events leave in the order of their totals.
        let mut totals = self.totals.lock().expect("progress lock");
        totals.in_flight.remove(&number);
        totals.transferred += bytes;
        totals.reported = totals.reported.max(totals.transferred);
        tracing::debug!(
            part = number,
            bytes,
            transferred = totals.transferred,
            "part recorded"
        );
        if let Some(sink) = &self.sink {
            sink.on_event(&ProgressEvent::PartDone {
                number,
                bytes,
                transferred: totals.transferred,
                concurrency: self.concurrency(),
            });
        }
    }

    /// Reports `notice` (to the log and the sink) and keeps it in `notices` for the outcome.
    pub(super) fn notice(&self, notices: &mut Vec<Notice>, notice: Notice) {
        tracing::warn!(%notice);
        self.emit(ProgressEvent::Notice {
            message: notice.to_string(),
            notice: notice.clone(),
        });
        notices.push(notice);
    }

    /// Reports the retries of the requests of `part` (or of the upload itself), when anyone listens.
    pub(super) fn observer(self: &Arc<Self>, part: Option<u32>) -> Option<RetryObserver> {
        let sink = self.sink.clone()?;
        Some(RetryObserver::new(move |n| {
            sink.on_event(&ProgressEvent::Retrying {
                part,
                api: n.api.map(|a| a.name().to_owned()),
                attempt: n.attempt,
                delay_ms: n.delay.as_millis() as u64,
                error: n.error.message(),
            });
        }))
    }

    /// Reports the retries of part `number` (`bytes` long), and counts it in flight until its
    /// `PartDone`, watching the body of each of its attempts go out; when anyone listens.
    pub(super) fn sending(self: &Arc<Self>, number: u32, bytes: u64) -> Option<RetryObserver> {
        let observer = self.observer(Some(number))?;
        Some(self.watch(number, bytes, observer))
    }

    /// Reports the retries of the PutObject that sends the whole source (`bytes` long), as the
    /// upload's own (no part number), and counts it in flight as part 1 until its `PartDone`,
    /// watching the body of each attempt go out; when anyone listens.
    pub(super) fn sending_whole(self: &Arc<Self>, bytes: u64) -> Option<RetryObserver> {
        let observer = self.observer(None)?;
        Some(self.watch(1, bytes, observer))
    }

    /// Counts part `number` in flight and has `observer` hand it each attempt's counter.
    fn watch(self: &Arc<Self>, number: u32, bytes: u64, observer: RetryObserver) -> RetryObserver {
        self.totals.lock().expect("progress lock").in_flight.insert(
            number,
            Flight {
                bytes,
                attempt: None,
                furthest: 0,
            },
        );
        let progress = Arc::downgrade(self);
        observer.on_attempt(move |attempt| {
            let Some(progress) = progress.upgrade() else {
                return;
            };
            let mut totals = progress.totals.lock().expect("progress lock");
            if let Some(flight) = totals.in_flight.get_mut(&number) {
                flight.attempt = Some(attempt.clone());
            }
        })
    }

    /// Reports the bytes of the parts in flight every [`SENDING_PERIOD`] while they move, until
    /// dropped; never returns. Does nothing when nobody listens.
    pub(super) async fn report_sending(&self) -> Infallible {
        if self.sink.is_none() {
            return std::future::pending().await;
        }
        let mut ticker = tokio::time::interval(SENDING_PERIOD);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.report_in_flight();
        }
    }

    /// Reports the bytes of the parts in flight, when they moved since the last report.
    fn report_in_flight(&self) {
        let mut totals = self.totals.lock().expect("progress lock");
        let (in_flight, parts) = totals.read_in_flight();
        let figure = totals.transferred + in_flight;
        if figure <= totals.reported {
            return;
        }
        totals.reported = figure;
        tracing::trace!(
            transferred = totals.transferred,
            in_flight,
            "bytes in flight"
        );
        self.emit(ProgressEvent::Sending {
            transferred: totals.transferred,
            in_flight,
            parts,
            concurrency: self.concurrency(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::scripted::{
        PART, Reply, Scripted, Trickle, data, part_of, request, uploader, uploader_retrying,
    };
    use crate::{MemoryStore, RetryConfig};
    use ossup_proto::checksum::crc64;

    /// A server taking bodies 16 KiB every 50 ms: a part of [`PART`] bytes takes about 350 ms.
    const SLOW: Trickle = Trickle {
        chunk: 16 << 10,
        pause: Duration::from_millis(50),
    };

    /// Uploads `data` to `server` and returns the progress events.
    async fn events_of(uploader: super::super::Uploader, data: &[u8]) -> Vec<ProgressEvent> {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        uploader
            .upload(
                request(data).progress(move |event: &ProgressEvent| {
                    sink.lock().unwrap().push(event.clone())
                }),
            )
            .await
            .unwrap();
        Arc::try_unwrap(events).unwrap().into_inner().unwrap()
    }

    /// The figure each `Sending` event shows: `transferred + in_flight`.
    fn sending_figures(events: &[ProgressEvent]) -> Vec<u64> {
        events
            .iter()
            .filter_map(|event| match event {
                ProgressEvent::Sending {
                    transferred,
                    in_flight,
                    parts,
                    ..
                } => {
                    assert_eq!(*in_flight, parts.iter().map(|p| p.sent).sum::<u64>());
                    Some(transferred + in_flight)
                }
                _ => None,
            })
            .collect()
    }

    /// Whether `events` show part `number` part way sent, at `at_least` bytes or more when given
    /// (the transport may hand a few socket buffers more than the server took before failing).
    fn shows_part_midway(events: &[ProgressEvent], number: u32, at_least: Option<u64>) -> bool {
        events.iter().any(|event| match event {
            ProgressEvent::Sending { parts, .. } => parts.iter().any(|p| {
                p.number == number
                    && p.sent > 0
                    && p.sent < p.bytes
                    && at_least.is_none_or(|s| p.sent >= s)
            }),
            _ => false,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_part_reports_its_bytes_in_flight_before_it_is_done() {
        let data = data(PART as usize + 100, 41);
        let server = Scripted::trickling(
            vec![
                Reply::initiated("U1"),
                Reply::uploads(&[("U1", "2024-01-01T00:00:00.000Z")]),
                Reply::stored(part_of(&data, 1)),
                Reply::stored(part_of(&data, 2)),
                Reply::completed("\"E-2\"", crc64(&data)),
            ],
            SLOW,
        );
        let store = Arc::new(MemoryStore::new());

        let events = events_of(uploader(&server, &store), &data).await;

        assert!(shows_part_midway(&events, 1, None), "{events:?}");
        let figures = sending_figures(&events);
        assert!(figures.is_sorted(), "{figures:?}");
        assert!(
            figures.iter().all(|&f| f <= data.len() as u64),
            "{figures:?}"
        );
        // The bytes in flight of a part come before its PartDone, which still counts it whole.
        let first_sending = events
            .iter()
            .position(|e| matches!(e, ProgressEvent::Sending { .. }))
            .unwrap();
        let first_done = events
            .iter()
            .position(|e| matches!(e, ProgressEvent::PartDone { number: 1, .. }))
            .unwrap();
        assert!(first_sending < first_done);
        assert!(events.iter().any(|e| matches!(
            e,
            ProgressEvent::PartDone {
                number: 1,
                bytes: PART,
                transferred: PART,
                concurrency: 1..,
            }
        )));
    }

    #[tokio::test(start_paused = true)]
    async fn a_retried_part_holds_its_furthest_mark_so_the_figure_never_goes_back() {
        let data = data(PART as usize + 100, 42);
        let cut = PART / 2;
        let server = Scripted::trickling(
            vec![
                Reply::initiated("U1"),
                Reply::uploads(&[("U1", "2024-01-01T00:00:00.000Z")]),
                // The first attempt of part 1 fails half way; the second sends it from the start.
                Reply::status(500).after_taking(cut),
                Reply::stored(part_of(&data, 1)),
                Reply::stored(part_of(&data, 2)),
                Reply::completed("\"E-2\"", crc64(&data)),
            ],
            SLOW,
        );
        let store = Arc::new(MemoryStore::new());
        let retry = RetryConfig::default()
            .max_attempts(2)
            .backoff(Duration::from_secs(1), Duration::from_secs(1));

        let events = events_of(uploader_retrying(&server, &store, retry), &data).await;

        assert!(
            events
                .iter()
                .any(|e| matches!(e, ProgressEvent::Retrying { part: Some(1), .. })),
            "{events:?}"
        );
        let figures = sending_figures(&events);
        assert!(figures.is_sorted(), "{figures:?}");
        // The first attempt got to `cut` (or a little past it); while the second sends the same
        // bytes again, the part shows that mark until it passes it.
        assert!(shows_part_midway(&events, 1, Some(cut)), "{events:?}");
        let retried_at = events
            .iter()
            .position(|e| matches!(e, ProgressEvent::Retrying { .. }))
            .unwrap();
        assert!(
            events[retried_at..].iter().all(|event| match event {
                ProgressEvent::Sending { parts, .. } =>
                    parts.iter().all(|p| p.number != 1 || p.sent >= cut),
                _ => true,
            }),
            "{events:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_put_object_reports_its_bytes_in_flight_too() {
        let data = data(PART as usize, 43);
        let server = Scripted::trickling(vec![Reply::stored(&data)], SLOW);
        let store = Arc::new(MemoryStore::new());
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();

        let outcome =
            uploader(&server, &store)
                .upload(request(&data).multipart_threshold(2 * PART).progress(
                    move |event: &ProgressEvent| sink.lock().unwrap().push(event.clone()),
                ))
                .await
                .unwrap();

        assert_eq!(outcome.method, super::super::UploadMethod::PutObject);
        let events = events.lock().unwrap();
        assert!(shows_part_midway(&events, 1, None), "{events:?}");
        assert!(sending_figures(&events).is_sorted(), "{events:?}");
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, ProgressEvent::Retrying { .. })),
            "{events:?}"
        );
    }

    #[test]
    fn without_a_sink_no_part_is_counted_in_flight() {
        let progress = Arc::new(Progress::new(None));
        assert!(progress.sending(1, 10).is_none());
        assert!(progress.sending_whole(10).is_none());
        assert!(progress.totals.lock().unwrap().in_flight.is_empty());
    }
}
