//! Poison-tolerant locking.
//!
//! Resync's critical sections leave their data consistent at every step (a counter bumped,
//! an entry inserted), so a panic inside one — a poisoned lock — carries no meaning: the
//! next user takes the data as it is instead of panicking in turn.

use std::sync::{
    Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError,
};

/// Locks `mutex`, recovering the data if a panicking thread poisoned it.
#[inline]
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Locks `mutex` if no other thread holds it, recovering the data if a panicking thread
/// poisoned it; `None` when it is held (the caller does not wait).
#[inline]
pub fn try_lock<T: ?Sized>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// Read-locks `lock`, recovering the data if a panicking thread poisoned it.
#[inline]
pub fn read<T: ?Sized>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write-locks `lock`, recovering the data if a panicking thread poisoned it.
#[inline]
pub fn write<T: ?Sized>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_hands_out_its_data() {
        let mutex = Mutex::new(1);
        let rw = RwLock::new(2);
        std::thread::scope(|scope| {
            let poisoner = scope.spawn(|| {
                let _mutex = lock(&mutex);
                let _rw = write(&rw);
                panic!("poison both");
            });
            assert!(poisoner.join().is_err());
        });
        assert!(mutex.is_poisoned() && rw.is_poisoned());
        *lock(&mutex) += 1;
        *write(&rw) += 1;
        assert_eq!((*lock(&mutex), *read(&rw)), (2, 3));
    }

    #[test]
    fn try_lock_does_not_wait_for_a_held_lock() {
        let mutex = Mutex::new(0);
        let held = lock(&mutex);
        assert!(try_lock(&mutex).is_none());
        drop(held);
        assert_eq!(try_lock(&mutex).map(|guard| *guard), Some(0));
        std::thread::scope(|scope| {
            let poisoner = scope.spawn(|| {
                let _held = lock(&mutex);
                panic!("poison it");
            });
            assert!(poisoner.join().is_err());
        });
        *try_lock(&mutex).expect("poisoned, not held") += 1;
        assert_eq!(*lock(&mutex), 1);
    }
}
