//! A PostgreSQL [`CheckpointStore`](ossup::CheckpointStore) for the ossup upload engine: the
//! checkpoints of many uploads, from many hosts, in one database that teams already run.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ossup::CheckpointStore;
//! use ossup_postgres::PostgresStore;
//!
//! # #[tokio::main] async fn main() -> Result<(), ossup::StoreError> {
//! // The password comes from PGPASSWORD or ~/.pgpass, never from the URL on a command line.
//! let store: Arc<dyn CheckpointStore> =
//!     Arc::new(PostgresStore::connect("postgres://ossup@db.example/ossup").await?);
//! println!("{} uploads in flight", store.list().await?.len());
//! # Ok(()) }
//! ```
//!
//! The tables, their versioning and their migrations are described in `docs/checkpoint-format.md`;
//! the store passes the contract suite of `ossup::testkit` against a real server (see
//! `tests/store_postgres.rs`). TLS (`sslmode=require` in the URL) needs the `tls` feature.

#![deny(missing_docs)]

mod claim;
mod lock;
mod password;
mod rows;
mod schema;
mod store;
mod tls;

pub use schema::SCHEMA_VERSION;
pub use store::{PostgresOptions, PostgresStore};
