//! The `ossup` binary run against a mock OSS server started in this process.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test, with its message

mod harness;

mod callback;
mod cooperate;
mod demo;
mod errors;
mod interrupt;
mod security;
mod stream;
mod tree;
mod upload;
mod uploads;
