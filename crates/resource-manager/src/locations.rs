//! Interned source locations: a lease slot stores its checkout's location as a `u32` index in an
//! atomic, and scans turn the index back into the `&'static Location`, without `unsafe`.
//!
//! The table is open-addressed by the location's address: a lookup is a hash and a probe of
//! `OnceLock`s (no lock, no allocation). Only the first checkout from a new source line takes the
//! insertion mutex.

use std::panic::Location;
use std::sync::{Mutex, OnceLock};

use resync_perf_core::sync::lock;

/// Slots of the table (a power of two).
const SLOTS: usize = 1024;
/// Distinct locations the table accepts (three quarters of the slots keep probes short).
pub(crate) const MAX_LOCATIONS: usize = SLOTS / 4 * 3;
/// The index returned once the table is full.
pub(crate) const UNKNOWN_LOCATION: u32 = u32::MAX;

/// Source locations seen by lease checkouts, by index.
#[derive(Debug)]
pub(crate) struct LocationTable {
    slots: Box<[OnceLock<&'static Location<'static>>]>,
    /// Serialises insertions and counts the occupied slots.
    inserted: Mutex<usize>,
}

fn home(location: &'static Location<'static>) -> usize {
    // Fibonacci hashing of the address: locations are distinct statics, spread over memory.
    let address = std::ptr::from_ref(location) as usize as u64;
    (address.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS.trailing_zeros())) as usize
}

impl LocationTable {
    pub(crate) fn new() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| OnceLock::new()).collect(),
            inserted: Mutex::new(0),
        }
    }

    /// The index of `location`, inserting it the first time; [`UNKNOWN_LOCATION`] once the
    /// table holds [`MAX_LOCATIONS`] other locations.
    pub(crate) fn index_of(&self, location: &'static Location<'static>) -> u32 {
        let start = home(location);
        for probe in 0..SLOTS {
            let index = (start + probe) & (SLOTS - 1);
            match self.slots[index].get() {
                Some(found) if std::ptr::eq(*found, location) => return index as u32,
                Some(_) => {}
                None => break,
            }
        }
        self.insert(location)
    }

    #[cold]
    fn insert(&self, location: &'static Location<'static>) -> u32 {
        let mut inserted = lock(&self.inserted);
        // Slots are only set under this mutex and never cleared: probing again is exact.
        let start = home(location);
        for probe in 0..SLOTS {
            let index = (start + probe) & (SLOTS - 1);
            match self.slots[index].get() {
                Some(found) if std::ptr::eq(*found, location) => return index as u32,
                Some(_) => {}
                None => {
                    if *inserted >= MAX_LOCATIONS {
                        return UNKNOWN_LOCATION;
                    }
                    *inserted += 1;
                    let _ = self.slots[index].set(location);
                    return index as u32;
                }
            }
        }
        UNKNOWN_LOCATION
    }

    /// The location at `index` (as returned by [`index_of`](Self::index_of)).
    pub(crate) fn get(&self, index: u32) -> Option<&'static Location<'static>> {
        self.slots.get(index as usize)?.get().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_location_keeps_one_index_and_resolves_back() {
        let table = LocationTable::new();
        let here = Location::caller();
        let there = Location::caller();
        let (a, b) = (table.index_of(here), table.index_of(there));
        assert_ne!(a, b);
        assert_eq!(
            table.index_of(here),
            a,
            "a known location is found, not re-inserted"
        );
        assert!(table.get(a).is_some_and(|found| std::ptr::eq(found, here)));
        assert!(table.get(b).is_some_and(|found| std::ptr::eq(found, there)));
        assert_eq!(table.get(UNKNOWN_LOCATION), None);
    }

    #[test]
    fn a_full_table_answers_unknown_and_keeps_the_known_ones() {
        let table = LocationTable::new();
        let locations: Vec<&'static Location<'static>> = (0..=MAX_LOCATIONS)
            .map(|_| &*Box::leak(Box::new(*Location::caller())))
            .collect();
        let indices: Vec<u32> = locations.iter().map(|l| table.index_of(l)).collect();
        assert!(indices[..MAX_LOCATIONS]
            .iter()
            .all(|&index| index != UNKNOWN_LOCATION));
        assert_eq!(indices[MAX_LOCATIONS], UNKNOWN_LOCATION);
        for (location, index) in locations.iter().zip(&indices).take(MAX_LOCATIONS) {
            assert_eq!(table.index_of(location), *index);
            assert!(table
                .get(*index)
                .is_some_and(|found| std::ptr::eq(found, *location)));
        }
    }
}
