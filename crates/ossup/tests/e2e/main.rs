//! The engine end to end: uploads and the client against the in-process mock OSS server (and, for
//! the request shapes, a wiremock server), through the default transport or a fault-injecting one
//! wrapped around it. One test binary, one module per area.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

mod common;

mod adopt;
mod batch;
mod callback_sts;
mod cancel_memory;
mod chaos;
mod checkpoint_records;
mod client_wiremock;
mod cooperate;
mod cooperate_tree;
mod hedge;
mod integrity;
mod options;
mod orphans;
mod rate_limit;
mod readme;
mod resume;
mod retry;
mod shared_parts;
mod stream;
mod upload;
mod upload_future_is_send;
