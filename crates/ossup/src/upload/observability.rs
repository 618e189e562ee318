//! Tests of what an upload tells `tracing`: its spans (upload, phases, parts) and the events a user
//! filters by level, captured by a layer of their own.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

use super::scripted::{
    PART, Reply, Scripted, checkpoint, data, part_of, planned, request, uploader,
};
use crate::{CheckpointStore as _, MemoryStore, ProgressEvent};
use ossup_proto::checksum::crc64;

/// A span as the capture saw it.
#[derive(Debug, Clone)]
struct SeenSpan {
    name: &'static str,
    /// The names of its ancestors, nearest first.
    ancestors: Vec<&'static str>,
    fields: BTreeMap<String, String>,
    closed: bool,
}

/// An event as the capture saw it.
#[derive(Debug, Clone)]
struct SeenEvent {
    level: Level,
    fields: BTreeMap<String, String>,
    /// The names of the spans it happened in, innermost first.
    spans: Vec<&'static str>,
    /// The fields of the innermost span it happened in.
    span_fields: BTreeMap<String, String>,
}

impl SeenEvent {
    fn message(&self) -> &str {
        self.fields.get("message").map_or("", String::as_str)
    }
}

/// Everything captured, in order.
#[derive(Debug, Default)]
struct Seen {
    spans: Vec<SeenSpan>,
    /// Where each live span id's record is in `spans` (ids are reused once a span closes).
    by_id: BTreeMap<u64, usize>,
    events: Vec<SeenEvent>,
}

/// A layer keeping every span and event.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Seen>>);

/// Collects fields as strings: strings as they are, the rest as `Debug` shows them.
struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let ancestors = ctx
            .span(id)
            .map(|span| span.scope().skip(1).map(|s| s.name()).collect())
            .unwrap_or_default();
        let mut seen = self.0.lock().unwrap();
        seen.spans.push(SeenSpan {
            name: attrs.metadata().name(),
            ancestors,
            fields,
            closed: false,
        });
        let at = seen.spans.len() - 1;
        seen.by_id.insert(id.into_u64(), at);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut seen = self.0.lock().unwrap();
        let at = seen.by_id[&id.into_u64()];
        values.record(&mut Fields(&mut seen.spans[at].fields));
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let scope: Vec<_> = ctx
            .event_scope(event)
            .map(|scope| scope.collect())
            .unwrap_or_default();
        let spans = scope.iter().map(|s| s.name()).collect();
        let mut seen = self.0.lock().unwrap();
        let span_fields = scope
            .first()
            .and_then(|s| seen.by_id.get(&s.id().into_u64()))
            .map(|&at| seen.spans[at].fields.clone())
            .unwrap_or_default();
        seen.events.push(SeenEvent {
            level: *event.metadata().level(),
            fields,
            spans,
            span_fields,
        });
    }

    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        let mut seen = self.0.lock().unwrap();
        if let Some(at) = seen.by_id.remove(&id.into_u64()) {
            seen.spans[at].closed = true;
        }
    }
}

impl Capture {
    /// The spans named `name`.
    fn spans(&self, name: &str) -> Vec<SeenSpan> {
        let seen = self.0.lock().unwrap();
        seen.spans
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    /// The events at `level`.
    fn events(&self, level: Level) -> Vec<SeenEvent> {
        let seen = self.0.lock().unwrap();
        seen.events
            .iter()
            .filter(|e| e.level == level)
            .cloned()
            .collect()
    }

    /// Every field value of every span and event, to search for what must never be there.
    fn every_value(&self) -> Vec<String> {
        let seen = self.0.lock().unwrap();
        let spans = seen.spans.iter().flat_map(|s| s.fields.values());
        let events = seen.events.iter().flat_map(|e| e.fields.values());
        spans.chain(events).cloned().collect()
    }
}

/// Runs `upload` with `capture` as the only subscriber of this thread (the test runtime has one).
async fn captured<T>(capture: &Capture, upload: impl Future<Output = T>) -> T {
    let subscriber = Registry::default().with(capture.clone());
    let _default = tracing::subscriber::set_default(subscriber);
    upload.await
}

/// The progress events of a request, kept for a test to read.
fn collect_events() -> (
    Arc<Mutex<Vec<ProgressEvent>>>,
    impl Fn(&ProgressEvent) + Send + Sync + 'static,
) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    (events, move |event: &ProgressEvent| {
        sink.lock().unwrap().push(event.clone())
    })
}

#[tokio::test]
async fn an_upload_span_holds_the_upload_and_each_phase_and_part_has_its_own() {
    let data = data(2 * PART as usize + 100, 31);
    let server = Scripted::new(vec![
        Reply::initiated("U1"),
        Reply::uploads(&[("U1", "2024-01-01T00:00:00.000Z")]),
        Reply::stored(part_of(&data, 1)),
        Reply::stored(part_of(&data, 2)),
        Reply::stored(part_of(&data, 3)),
        Reply::completed("\"E-3\"", crc64(&data)),
    ]);
    let store = Arc::new(MemoryStore::new());
    let (events, sink) = collect_events();
    let capture = Capture::default();

    captured(
        &capture,
        uploader(&server, &store).upload(request(&data).progress(sink)),
    )
    .await
    .unwrap();

    let uploads = capture.spans("upload");
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    let upload = &uploads[0];
    let field = |name: &str| upload.fields.get(name).map(String::as_str);
    assert_eq!(field("bucket"), Some("bucket"));
    assert_eq!(field("key"), Some("key"));
    assert_eq!(field("size"), Some(data.len().to_string().as_str()));
    assert_eq!(field("part_size"), Some(PART.to_string().as_str()));
    assert_eq!(field("parts"), Some("3"));
    assert_eq!(field("method"), Some("multipart"));
    assert_eq!(field("upload_id"), Some("U1"));
    assert!(upload.closed);
    for phase in ["plan", "resume", "transfer", "complete"] {
        let spans = capture.spans(phase);
        assert_eq!(spans.len(), 1, "{phase}: {spans:?}");
        assert_eq!(spans[0].ancestors, ["upload"], "{phase}");
    }

    let parts = capture.spans("part");
    assert_eq!(parts.len(), 3, "{parts:?}");
    for (span, number) in parts.iter().zip(1u64..) {
        let size = part_of(&data, number as u32).len().to_string();
        assert_eq!(span.ancestors, ["transfer", "upload"]);
        assert_eq!(span.fields["number"], number.to_string());
        assert_eq!(span.fields["offset"], ((number - 1) * PART).to_string());
        assert_eq!(span.fields["size"], size);
        assert_eq!(span.fields["sent"], size);
        assert!(span.closed);
    }
    // The part's PartDone says what its span says.
    let done: Vec<(String, String)> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|event| match event {
            ProgressEvent::PartDone { number, bytes, .. } => {
                Some((number.to_string(), bytes.to_string()))
            }
            _ => None,
        })
        .collect();
    let spanned: Vec<(String, String)> = parts
        .iter()
        .map(|s| (s.fields["number"].clone(), s.fields["sent"].clone()))
        .collect();
    assert_eq!(done, spanned);

    // The client's own events of a part's request happen in the part's span.
    let answered: Vec<SeenEvent> = capture
        .events(Level::DEBUG)
        .into_iter()
        .filter(|e| {
            e.message() == "answered"
                && e.spans.first() == Some(&"oss_request")
                && e.span_fields.get("api").is_some_and(|a| a == "UploadPart")
        })
        .collect();
    assert_eq!(answered.len(), 3);
    for event in &answered {
        // The request's span sits directly in its part's span.
        assert_eq!(event.spans.get(1), Some(&"part"), "{event:?}");
    }

    let infos: Vec<String> = capture
        .events(Level::INFO)
        .iter()
        .map(|e| e.message().to_owned())
        .collect();
    assert_eq!(infos, ["upload starting", "upload completed"]);
    let completed = capture
        .events(Level::INFO)
        .into_iter()
        .find(|e| e.message() == "upload completed")
        .unwrap();
    assert_eq!(completed.fields["bytes_sent"], data.len().to_string());
    assert_eq!(completed.fields["bytes_reused"], "0");
    assert!(completed.fields.contains_key("elapsed_ms"));
    let debugs: Vec<SeenEvent> = capture.events(Level::DEBUG);
    for message in ["part sent and verified", "part recorded"] {
        let parts: Vec<&str> = debugs
            .iter()
            .filter(|e| e.message() == message)
            .map(|e| e.fields["part"].as_str())
            .collect();
        assert_eq!(parts, ["1", "2", "3"], "{message}");
    }
    // The secret key never shows, nor does a signature.
    for value in capture.every_value() {
        assert!(!value.contains("test-sk"), "{value}");
        assert!(!value.contains("Signature"), "{value}");
    }
}

#[tokio::test]
async fn a_resumed_upload_says_what_it_reuses_and_spans_only_the_parts_it_sends() {
    let data = data(2 * PART as usize + 100, 32);
    let store = Arc::new(MemoryStore::new());
    let server = Scripted::new(vec![
        Reply::parts("U1", &[(1, part_of(&data, 1)), (2, part_of(&data, 2))]),
        Reply::stored(part_of(&data, 3)),
        Reply::completed("\"E-3\"", crc64(&data)),
    ]);
    let uploader = uploader(&server, &store);
    let ctx = planned(&uploader, request(&data)).await;
    store
        .save(&checkpoint(&ctx, "U1", &data, &[1, 2]))
        .await
        .unwrap();
    let capture = Capture::default();

    let outcome = captured(&capture, uploader.upload(request(&data)))
        .await
        .unwrap();

    assert!(outcome.resumed);
    let parts = capture.spans("part");
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert_eq!(parts[0].fields["number"], "3");
    assert_eq!(parts[0].fields["size"], "100");
    let resuming = capture
        .events(Level::INFO)
        .into_iter()
        .find(|e| e.message() == "resuming")
        .expect("a resuming event");
    assert_eq!(resuming.fields["upload_id"], "U1");
    assert_eq!(resuming.fields["parts_reused"], "2");
    assert_eq!(resuming.fields["bytes_reused"], (2 * PART).to_string());
    let completed = capture
        .events(Level::INFO)
        .into_iter()
        .find(|e| e.message() == "upload completed")
        .unwrap();
    assert_eq!(completed.fields["bytes_sent"], "100");
    assert_eq!(completed.fields["bytes_reused"], (2 * PART).to_string());
}

#[tokio::test]
async fn a_notice_is_a_warn_event_in_the_upload_span() {
    let data = data(PART as usize + 100, 33);
    let server = Scripted::new(vec![
        Reply::initiated("U1"),
        // ListMultipartUploads refused: the orphan sweep fails and the upload goes on.
        Reply::error(403, ossup_proto::ErrorCode::AccessDenied),
        Reply::stored(part_of(&data, 1)),
        Reply::stored(part_of(&data, 2)),
        Reply::completed("\"E-2\"", crc64(&data)),
    ]);
    let store = Arc::new(MemoryStore::new());
    let capture = Capture::default();

    let outcome = captured(&capture, uploader(&server, &store).upload(request(&data)))
        .await
        .unwrap();

    assert_eq!(outcome.notices.len(), 1, "{:?}", outcome.notices);
    let warned: Vec<SeenEvent> = capture
        .events(Level::WARN)
        .into_iter()
        .filter(|e| e.fields.contains_key("notice"))
        .collect();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert_eq!(warned[0].fields["notice"], outcome.notices[0].to_string());
    assert!(warned[0].spans.contains(&"upload"), "{warned:?}");
}
