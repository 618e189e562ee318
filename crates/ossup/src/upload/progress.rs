//! Progress reporting of one upload: events to the request's sink, notices to the outcome too.

use std::sync::{Arc, Mutex};

use crate::retry::RetryObserver;
use crate::{Notice, ProgressEvent, ProgressSink};

/// Reports progress: one event at a time, transferred never decreasing.
pub(super) struct Progress {
    sink: Option<Arc<dyn ProgressSink>>,
    transferred: Mutex<u64>,
}

impl Progress {
    /// Reports to `sink` (nowhere without one), starting from nothing transferred.
    pub(super) fn new(sink: Option<Arc<dyn ProgressSink>>) -> Self {
        Self {
            sink,
            transferred: Mutex::new(0),
        }
    }

    /// Sends `event` to the sink.
    pub(super) fn emit(&self, event: ProgressEvent) {
        if let Some(sink) = &self.sink {
            sink.on_event(&event);
        }
    }

    /// Counts the `reused` bytes already on the server as transferred.
    pub(super) fn start_at(&self, reused: u64) {
        *self.transferred.lock().expect("progress lock") = reused;
    }

    /// Reports part `number` done, adding its `bytes` to the total.
    pub(super) fn part_done(&self, number: u32, bytes: u64) {
        // The lock is held while emitting so events leave in the order of their totals.
        let mut transferred = self.transferred.lock().expect("progress lock");
        *transferred += bytes;
        if let Some(sink) = &self.sink {
            sink.on_event(&ProgressEvent::PartDone {
                number,
                bytes,
                transferred: *transferred,
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
}
