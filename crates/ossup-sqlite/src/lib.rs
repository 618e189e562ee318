//! A SQLite [`CheckpointStore`](ossup::CheckpointStore) for the ossup upload engine: the checkpoints
//! of many uploads in one database file, shared safely by several processes.
//!
//! ```
//! use std::sync::Arc;
//! use ossup::CheckpointStore;
//! use ossup_sqlite::SqliteStore;
//!
//! # #[tokio::main] async fn main() -> Result<(), ossup::StoreError> {
//! # let dir = tempfile::tempdir().unwrap();
//! let store: Arc<dyn CheckpointStore> =
//!     Arc::new(SqliteStore::open(dir.path().join("checkpoints.db")).await?);
//! assert!(store.list().await?.is_empty());
//! # Ok(()) }
//! ```
//!
//! The schema, its versioning and its migrations are described in `docs/checkpoint-format.md`; the
//! store passes the contract suite of `ossup::testkit` (see `tests/store_sqlite.rs`).

#![deny(missing_docs)]

mod claim;
mod digests;
mod lease;
mod rows;
mod schema;
mod store;

pub use schema::SCHEMA_VERSION;
pub use store::{SqliteOptions, SqliteStore};
