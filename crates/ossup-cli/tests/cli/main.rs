//! The `ossup` binary run against a mock OSS server started in this process.

mod harness;

mod callback;
mod demo;
mod errors;
mod interrupt;
mod upload;
mod uploads;
