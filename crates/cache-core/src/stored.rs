//! What the cache hands moka: each value with the instant it was stored, and the moka
//! [`Expiry`] adaptors that see through that wrapper.
//!
//! The stamp is how a read-through call counts its hit or miss with a single moka lookup.
//! moka's `try_get_with` does not tell a caller that found the value from one that waited
//! for another caller's load of it; the stamp does: a value stamped before the call was made
//! is a hit (also when the call then waits the instant until moka stores it), anything else
//! (this call's own load, a load it waited for, a value written after the call was made) a
//! miss. The alternative, a counting `get` before the load, made every miss look
//! the key up twice and log the read twice, which cost a third of the read-through
//! throughput at 2 threads (see the crate README).

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;

use crate::stats::{Counter, Stats};

/// When a value was stored: a TSC-based reading (`quanta`), 10–20 ns to take. quanta uses the
/// TSC only where the CPU reports it invariant, and the OS monotonic clock otherwise; on a
/// machine whose cores' TSCs are not synchronised (rare: some VMs and multi-socket hosts) the
/// skew between two cores can misfile a read-through that races a write within that skew as
/// a hit or a miss. Nothing but the hit/miss split depends on it.
pub(crate) type Stamp = quanta::Instant;

/// The current instant.
#[inline]
pub(crate) fn now() -> Stamp {
    quanta::Instant::now()
}

/// A cached value and when it was stored.
#[derive(Debug, Clone)]
pub(crate) struct Stored<V> {
    pub(crate) value: V,
    pub(crate) stored_at: Stamp,
}

impl<V> Stored<V> {
    /// `value`, stamped now.
    #[inline]
    pub(crate) fn now(value: V) -> Self {
        Self {
            value,
            stored_at: now(),
        }
    }

    /// Whether the value was stored before `instant`.
    #[inline]
    pub(crate) fn stored_before(&self, instant: Stamp) -> bool {
        self.stored_at < instant
    }
}

/// The caller's per-entry expiry, applied to the value inside the stamp.
pub(crate) struct UserExpiry<K, V> {
    pub(crate) inner: Arc<dyn Expiry<K, V> + Send + Sync + 'static>,
}

impl<K, V> Expiry<K, Stored<V>> for UserExpiry<K, V> {
    fn expire_after_create(
        &self,
        key: &K,
        value: &Stored<V>,
        created_at: Instant,
    ) -> Option<Duration> {
        self.inner
            .expire_after_create(key, &value.value, created_at)
    }

    fn expire_after_read(
        &self,
        key: &K,
        value: &Stored<V>,
        read_at: Instant,
        duration_until_expiry: Option<Duration>,
        last_modified_at: Instant,
    ) -> Option<Duration> {
        self.inner.expire_after_read(
            key,
            &value.value,
            read_at,
            duration_until_expiry,
            last_modified_at,
        )
    }

    fn expire_after_update(
        &self,
        key: &K,
        value: &Stored<V>,
        updated_at: Instant,
        duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        self.inner
            .expire_after_update(key, &value.value, updated_at, duration_until_expiry)
    }
}

/// An internal moka [`Expiry`] that never expires anything and counts each write as moka
/// sees it: `expire_after_create` for a key moka did not hold (an insert or a stored load),
/// `expire_after_update` for a replaced live value. moka calls them inside the write, so
/// the counts are exact even when writers race on one key (a `contains_key` before the
/// write was measured too: it counts two racing writers of an absent key as two creates,
/// and cost writes more than these callbacks; the price here is a call of the default
/// `expire_after_read` on every hit).
pub(crate) struct WriteCounter {
    pub(crate) stats: Arc<Stats>,
}

impl<K, V> Expiry<K, V> for WriteCounter {
    fn expire_after_create(&self, _key: &K, _value: &V, _created_at: Instant) -> Option<Duration> {
        self.stats.incr(Counter::Created);
        None
    }

    fn expire_after_update(
        &self,
        _key: &K,
        _value: &V,
        _updated_at: Instant,
        duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        self.stats.incr(Counter::EvictedReplaced);
        duration_until_expiry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_falls_between_the_instants_around_it() {
        let before = now();
        let stored = Stored::now(7u8);
        let after = now();
        assert!(!stored.stored_before(before), "stored after `before`");
        assert!(stored.stored_at <= after);
        assert!(!Stored::now(8u8).stored_before(stored.stored_at));
    }
}
