//! `IndexFreshness`: how far the in-memory index has followed the store's change feed, so
//! a replica can say how stale its answers may be (GetInfo, health).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub struct IndexFreshness {
    /// The last feed sequence number whose change the index reflects.
    applied: AtomicI64,
    /// The newest sequence number seen in the feed.
    newest_seen: AtomicI64,
    /// Every change committed before this instant is in the index.
    complete_as_of: Mutex<Instant>,
}

impl IndexFreshness {
    /// An index loaded from a store whose feed stood at `applied`, read at `as_of`.
    pub fn new(applied: i64, as_of: Instant) -> Self {
        Self {
            applied: AtomicI64::new(applied),
            newest_seen: AtomicI64::new(applied),
            complete_as_of: Mutex::new(as_of),
        }
    }

    pub fn applied(&self) -> i64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Changes known to exist that the index does not reflect yet.
    pub fn pending(&self) -> u64 {
        (self.newest_seen.load(Ordering::Acquire) - self.applied()).max(0) as u64
    }

    /// How long ago the index was last known to hold every committed change; grows while
    /// the feed cannot be read.
    pub fn staleness(&self) -> Duration {
        self.complete_as_of
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }

    pub fn saw(&self, seq: i64) {
        self.newest_seen.fetch_max(seq, Ordering::AcqRel);
    }

    pub fn applied_through(&self, seq: i64) {
        self.saw(seq);
        self.applied.fetch_max(seq, Ordering::AcqRel);
    }

    /// A reload restarts from `seq`, possibly below what was applied before.
    pub fn reset_to(&self, seq: i64, as_of: Instant) {
        self.applied.store(seq, Ordering::Release);
        self.saw(seq);
        self.complete_as_of(as_of);
    }

    /// A read of the feed that began at `asked_at` found nothing more to apply.
    pub fn complete_as_of(&self, asked_at: Instant) {
        let mut at = self
            .complete_as_of
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *at = (*at).max(asked_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_and_seen_only_move_forward_until_a_reload() {
        let start = Instant::now();
        let f = IndexFreshness::new(5, start);
        f.saw(9);
        assert_eq!((f.applied(), f.pending()), (5, 4));
        f.applied_through(7);
        f.applied_through(6);
        assert_eq!((f.applied(), f.pending()), (7, 2));
        f.reset_to(3, start);
        assert_eq!(f.applied(), 3);
        f.complete_as_of(start - Duration::from_secs(60));
        assert!(
            f.staleness() < Duration::from_secs(60),
            "as-of never goes back"
        );
    }
}
