//! Locking a `std` mutex without giving up on poisoning. Every lock in this crate guards state
//! that is never left half-updated (each critical section is a single assignment, insert or
//! take), so a panic elsewhere while one was held leaves data that is still whole: using it beats
//! turning one panic into a panic in every later call.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, recovering the guard if a panic elsewhere poisoned it.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
