//! moka's frequency sketch (`common/frequency_sketch.rs`, ported there from Caffeine; moka is
//! licensed MIT OR Apache-2.0, as this workspace), copied without change of behaviour: a
//! count-min sketch of 4-bit counters with periodic halving.

/// Caffeine's seeds, as moka uses them: FNV-1a, CityHash and Murmur3 constants.
const SEED: [u64; 4] = [
    0xc3a5_c85c_97cb_3127,
    0xb492_b66f_be98_f273,
    0x9ae1_6a3b_2f90_404f,
    0xcbf2_9ce4_8422_2325,
];
const RESET_MASK: u64 = 0x7777_7777_7777_7777;
const ONE_MASK: u64 = 0x1111_1111_1111_1111;

/// moka's count-min sketch: 16 four-bit counters per word, four depths, periodic halving.
#[derive(Debug, Default)]
pub(super) struct FrequencySketch {
    sample_size: u32,
    table_mask: u64,
    table: Box<[u64]>,
    size: u32,
}

impl FrequencySketch {
    /// Sizes the table for a cache of `cap` entries, forgetting all counts, unless it is
    /// already at least that large (moka's `ensure_capacity`).
    pub(super) fn ensure_capacity(&mut self, cap: u32) {
        let maximum = cap.min(1 << 30);
        let table_size = if maximum == 0 {
            1
        } else {
            maximum.next_power_of_two()
        };
        if self.table.len() >= table_size as usize {
            return;
        }
        self.table = vec![0; table_size as usize].into_boxed_slice();
        self.table_mask = u64::from(table_size - 1);
        self.sample_size = if cap == 0 {
            10
        } else {
            maximum.saturating_mul(10).min(i32::MAX as u32)
        };
    }

    /// The estimated number of occurrences of `hash`, at most 15; 0 while disabled.
    pub(super) fn frequency(&self, hash: u64) -> u8 {
        if self.table.is_empty() {
            return 0;
        }
        let start = ((hash & 3) << 2) as u8;
        let mut frequency = u8::MAX;
        for depth in 0..4 {
            let index = self.index_of(hash, depth);
            let shift = (start + depth) << 2;
            frequency = frequency.min(((self.table[index] >> shift) & 0xF) as u8);
        }
        frequency
    }

    /// Counts one occurrence of `hash`; halves all counters every `sample_size` counted
    /// increments. Does nothing while disabled.
    pub(super) fn increment(&mut self, hash: u64) {
        if self.table.is_empty() {
            return;
        }
        let start = ((hash & 3) << 2) as u8;
        let mut added = false;
        for depth in 0..4 {
            let index = self.index_of(hash, depth);
            let offset = usize::from(start + depth) << 2;
            let mask = 0xF_u64 << offset;
            if self.table[index] & mask != mask {
                self.table[index] += 1 << offset;
                added = true;
            }
        }
        if added {
            self.size += 1;
            if self.size >= self.sample_size {
                self.reset();
            }
        }
    }

    /// Halves every counter.
    fn reset(&mut self) {
        let mut odd = 0u32;
        for word in self.table.iter_mut() {
            odd += (*word & ONE_MASK).count_ones();
            *word = (*word >> 1) & RESET_MASK;
        }
        self.size = (self.size >> 1) - (odd >> 2);
    }

    fn index_of(&self, hash: u64, depth: u8) -> usize {
        let seed = SEED[usize::from(depth)];
        let mut hash = hash.wrapping_add(seed).wrapping_mul(seed);
        hash = hash.wrapping_add(hash >> 32);
        (hash & self.table_mask) as usize
    }
}

#[cfg(test)]
impl FrequencySketch {
    /// Words in the table (16 counters each).
    pub(super) fn table_len(&self) -> usize {
        self.table.len()
    }

    /// Counted increments between two resets.
    pub(super) fn sample_size(&self) -> u32 {
        self.sample_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys as the advisor produces them: well mixed, below a 1 % threshold.
    fn key(i: u64) -> u64 {
        crate::advisor::key_hash(&i) / 100
    }

    #[test]
    fn the_sketch_counts_to_fifteen_and_resets_by_halving() {
        let mut sketch = FrequencySketch::default();
        sketch.increment(key(1));
        assert_eq!(sketch.frequency(key(1)), 0, "disabled until sized");
        sketch.ensure_capacity(128);
        for _ in 0..20 {
            sketch.increment(key(1));
        }
        assert_eq!(sketch.frequency(key(1)), 15);
        for _ in 0..6 {
            sketch.increment(key(2));
        }
        assert_eq!(sketch.frequency(key(2)), 6);
        // Fill the sample: 1 280 counted increments trigger the reset.
        let mut i = 3;
        while sketch.size < sketch.sample_size - 1 {
            sketch.increment(key(i));
            i += 1;
        }
        let before = sketch.frequency(key(2));
        assert!(before >= 6);
        sketch.increment(key(2));
        assert!(
            sketch.size <= sketch.sample_size / 2,
            "size {}",
            sketch.size
        );
        assert_eq!(sketch.frequency(key(2)), before.div_ceil(2));
        assert_eq!(sketch.frequency(key(1)), 7);
    }
}
