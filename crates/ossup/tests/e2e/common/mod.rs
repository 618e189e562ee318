//! What several end-to-end modules share beyond `ossup-test-support`: an uploader sending through a
//! chosen transport, a recorder of progress events, a store shared between runs, and the
//! fault-injecting transport.

use std::sync::{Arc, Mutex};

use ossup::{MemoryStore, ProgressEvent, UploaderBuilder};
pub(crate) use ossup_test_support::{BUCKET, PART, assert_object_is, builder, client, data, mock};

pub(crate) mod faults;
pub(crate) mod tree;

/// As [`builder`], sending through `transport` (a [`faults::Faulty`], say).
pub(crate) fn builder_with(
    endpoint: &str,
    transport: impl ossup::Transport + 'static,
) -> UploaderBuilder {
    builder(endpoint).transport(transport)
}

/// Collects progress events.
#[derive(Clone, Default)]
pub(crate) struct Events(pub Arc<Mutex<Vec<ProgressEvent>>>);

impl Events {
    /// A sink that appends every event to this log.
    pub(crate) fn sink(&self) -> impl Fn(&ProgressEvent) + Send + Sync + 'static {
        let events = self.0.clone();
        move |e: &ProgressEvent| events.lock().unwrap().push(e.clone())
    }

    /// Every event so far, in order.
    pub(crate) fn all(&self) -> Vec<ProgressEvent> {
        self.0.lock().unwrap().clone()
    }

    /// The `transferred` of every PartDone, in order.
    pub(crate) fn transferred(&self) -> Vec<u64> {
        self.all()
            .into_iter()
            .filter_map(|e| match e {
                ProgressEvent::PartDone { transferred, .. } => Some(transferred),
                _ => None,
            })
            .collect()
    }
}

/// A memory store shared between runs of a test.
pub(crate) fn shared_store() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new())
}
