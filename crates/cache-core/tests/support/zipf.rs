//! A seeded Zipf key-stream generator shared by tests, benches and examples.

#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Samples ranks `0..n` with probability proportional to `1 / (rank + 1)^exponent`, by
/// inverting the cumulative distribution with a binary search.
#[derive(Debug)]
pub(crate) struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    pub(crate) fn new(n: usize, exponent: f64) -> Self {
        let mut cumulative = Vec::with_capacity(n);
        let mut total = 0.0;
        for rank in 0..n {
            total += 1.0 / ((rank + 1) as f64).powf(exponent);
            cumulative.push(total);
        }
        for value in &mut cumulative {
            *value /= total;
        }
        Self { cumulative }
    }

    pub(crate) fn sample(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.gen();
        self.cumulative.partition_point(|&c| c < u) as u64
    }

    /// `len` keys drawn with a fixed seed. Ranks are scrambled into keys so that the hottest
    /// keys are not simply the smallest integers.
    pub(crate) fn trace(&self, len: usize, seed: u64) -> Vec<u64> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..len).map(|_| scramble(self.sample(&mut rng))).collect()
    }
}

/// A bijection on u64 (odd multiplier), so distinct ranks stay distinct keys.
pub(crate) fn scramble(rank: u64) -> u64 {
    rank.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A Zipf trace interleaved with one-off scans: after every `scan_every` Zipf requests,
/// `scan_len` keys never requested before or after.
pub(crate) fn trace_with_scans(
    zipf: &Zipf,
    len: usize,
    seed: u64,
    scan_every: usize,
    scan_len: usize,
) -> Vec<u64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut next_scan_key = 1u64 << 40;
    let mut trace = Vec::with_capacity(len);
    while trace.len() < len {
        for _ in 0..scan_every {
            trace.push(scramble(zipf.sample(&mut rng)));
        }
        for _ in 0..scan_len {
            trace.push(scramble(next_scan_key));
            next_scan_key += 1;
        }
    }
    trace.truncate(len);
    trace
}
