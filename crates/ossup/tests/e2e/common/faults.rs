//! A transport that wraps the hyper transport and misbehaves on cue: loses answers, answers errors
//! itself, tampers with headers, hangs, or "crashes" the upload after some parts.
//!
//! It sits where the network is (below the signing and retry layers), so the engine sees each fault
//! exactly as it would see a real one.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ossup::HyperTransport;
use ossup::{Api, ErrorCode};
use ossup::{CancellationToken, Error, ResponseBody, Transport};
use ossup_proto::ErrorResponse;

/// What to do to a matching request.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// Forward it, then report the connection reset instead of the answer.
    LoseAnswer,
    /// Do not forward; answer this error.
    Answer(ErrorCode),
    /// Do not forward; answer this error with this `Date` header.
    AnswerDated(ErrorCode, std::time::SystemTime),
    /// Forward it and replace a response header.
    SetHeader(&'static str, String),
    /// Never answer (the request is not forwarded).
    Hang,
    /// Forward it, cancel `token` (the process "dies"), and never answer.
    ForwardThenCrash(CancellationToken),
    /// Do not forward; cancel `token` and never answer.
    DropThenCrash(CancellationToken),
}

/// A fault: which requests it hits and how often.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub api: Api,
    /// Only this part number (UploadPart), or any.
    pub part: Option<u32>,
    /// Let this many matching requests through first.
    pub skip: usize,
    /// Hit at most this many matching requests after the skipped ones (`usize::MAX`: all).
    pub times: usize,
    pub action: Action,
}

impl Rule {
    pub(crate) fn new(api: Api, action: Action) -> Self {
        Self {
            api,
            part: None,
            skip: 0,
            times: usize::MAX,
            action,
        }
    }
    pub(crate) fn part(mut self, n: u32) -> Self {
        self.part = Some(n);
        self
    }
    pub(crate) fn skip(mut self, n: usize) -> Self {
        self.skip = n;
        self
    }
    pub(crate) fn times(mut self, n: usize) -> Self {
        self.times = n;
        self
    }
}

/// One request the transport saw.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub api: Option<Api>,
    pub part: Option<u32>,
    pub content_md5: bool,
    pub headers: http::HeaderMap,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<(Rule, usize)>,
    seen: Vec<Seen>,
    /// Actions decided per request, consumed in order (for tests that script each call).
    script: VecDeque<Option<Action>>,
}

/// The faulty transport; clones share rules and the log.
#[derive(Debug, Clone)]
pub(crate) struct Faulty {
    inner: HyperTransport,
    state: Arc<Mutex<State>>,
}

impl Faulty {
    pub(crate) fn new() -> Self {
        Self {
            inner: HyperTransport::new(),
            state: Arc::default(),
        }
    }

    pub(crate) fn rule(&self, rule: Rule) -> &Self {
        self.state.lock().unwrap().rules.push((rule, 0));
        self
    }

    pub(crate) fn clear(&self) {
        let mut state = self.state.lock().unwrap();
        state.rules.clear();
        state.script.clear();
    }

    /// Every request seen so far, and forgets them.
    pub(crate) fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut self.state.lock().unwrap().seen)
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// The part numbers of the UploadPart requests seen.
    pub(crate) fn parts_sent(&self) -> Vec<u32> {
        self.seen()
            .iter()
            .filter(|s| s.api == Some(Api::UploadPart))
            .filter_map(|s| s.part)
            .collect()
    }

    pub(crate) fn count(&self, api: Api) -> usize {
        self.seen().iter().filter(|s| s.api == Some(api)).count()
    }

    fn decide(&self, api: Option<Api>, part: Option<u32>) -> Option<Action> {
        let mut state = self.state.lock().unwrap();
        for (rule, matched) in state.rules.iter_mut() {
            if Some(rule.api) != api || (rule.part.is_some() && rule.part != part) {
                continue;
            }
            *matched += 1;
            if *matched > rule.skip && *matched - rule.skip <= rule.times {
                return Some(rule.action.clone());
            }
        }
        None
    }
}

fn error_answer(code: ErrorCode) -> http::Response<ResponseBody> {
    let doc = ErrorResponse::new(code, "FAULT-REQUEST", "fault.local");
    let mut response = http::Response::new(ResponseBody::from_bytes(doc.to_xml()));
    *response.status_mut() = http::StatusCode::from_u16(code.status()).unwrap();
    response
        .headers_mut()
        .insert("x-oss-request-id", "FAULT-REQUEST".parse().unwrap());
    response
}

fn reset() -> Error {
    Error::connection(
        "connection reset by the fault injector",
        std::io::Error::from(std::io::ErrorKind::ConnectionReset),
    )
}

#[async_trait::async_trait]
impl Transport for Faulty {
    async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<ResponseBody>, Error> {
        let api = request.extensions().get::<Api>().copied();
        let part = request.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("partNumber="))
                .and_then(|n| n.parse().ok())
        });
        self.state.lock().unwrap().seen.push(Seen {
            api,
            part,
            content_md5: request.headers().contains_key("content-md5"),
            headers: request.headers().clone(),
        });
        match self.decide(api, part) {
            None => self.inner.send(request).await,
            Some(Action::LoseAnswer) => {
                let response = self.inner.send(request).await?;
                let _ = response.into_body().collect(1 << 20).await;
                Err(reset())
            }
            Some(Action::Answer(code)) => Ok(error_answer(code)),
            Some(Action::AnswerDated(code, date)) => {
                let mut response = error_answer(code);
                response.headers_mut().insert(
                    http::header::DATE,
                    httpdate::fmt_http_date(date).parse().unwrap(),
                );
                Ok(response)
            }
            Some(Action::SetHeader(name, value)) => {
                let mut response = self.inner.send(request).await?;
                response.headers_mut().insert(name, value.parse().unwrap());
                Ok(response)
            }
            Some(Action::Hang) => std::future::pending().await,
            Some(Action::ForwardThenCrash(token)) => {
                let response = self.inner.send(request).await?;
                let _ = response.into_body().collect(1 << 20).await;
                token.cancel();
                std::future::pending().await
            }
            Some(Action::DropThenCrash(token)) => {
                token.cancel();
                std::future::pending().await
            }
        }
    }

    /// Forwarded: the requests it passes on are counted by the hyper transport below; a `Hang`
    /// then looks like a request that never started moving, as a held connection would.
    fn reports_progress(&self) -> bool {
        self.inner.reports_progress()
    }
}
