//! Replica coherence: each server follows the store's change feed (`gallery_changes`) and
//! applies other replicas' enrolments and deletions to its own index, woken by the
//! database's notifications (`wakeups`) and polling as a backstop (`follower`).

mod follower;
mod wakeups;

pub use follower::{spawn, SyncConfig};
