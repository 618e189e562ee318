//! The store contract's cases, one public function each, grouped by what they exercise.

mod cooperate;
mod durability;
mod lifecycle;
mod lock;
mod records;

pub use cooperate::{
    a_finished_file_is_handed_to_the_next_claim, a_store_that_cannot_cooperate_says_so,
    claims_skip_recorded_parts_and_other_workers_claims, exactly_one_worker_claims_the_completion,
    expired_claims_are_taken_over_and_released_ones_are_free,
    expired_file_claims_are_taken_over_and_released_ones_are_free,
    live_file_claims_are_listed_by_bucket_and_prefix, racing_workers_never_claim_one_part_twice,
    racing_workers_never_hold_one_file_twice,
};
pub use durability::{
    corruption_is_detected_and_set_aside, reopened_store_sees_everything_recorded,
};
pub use lifecycle::{
    missing_checkpoints_load_as_none_and_remove_quietly, remove_and_list_track_saved_checkpoints,
    round_trips_every_field, saving_replaces_the_whole_checkpoint,
};
pub use lock::{
    lock_is_exclusive_and_released_on_drop, racing_claims_on_one_upload_admit_one_holder,
};
pub use records::{
    concurrent_records_lose_nothing, recording_a_part_twice_is_the_same_as_once,
    recording_many_parts_at_once_is_the_same_as_one_by_one,
    recording_replaces_a_part_with_the_same_number,
    recording_without_a_saved_checkpoint_is_not_found,
};

use crate::store::StoreError;

fn must<T>(case: &str, what: &str, result: Result<T, StoreError>) -> T {
    result.unwrap_or_else(|err| panic!("contract case {case}: {what} failed: {err}"))
}
