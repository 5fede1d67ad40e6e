//! Histogram percentiles against exact percentiles of the same random samples.
//!
//! Exact percentile = nearest rank: the value at rank `max(1, ⌈q·n⌉)` of the sorted samples.
//! Documented bounds: percentiles within 1/64 of the exact value, min and max within 1/32 (and
//! bracketing every sample), count exact, sum exact until it saturates.

use proptest::prelude::*;
use resync_perf_core::Histogram;

/// Nearest-rank percentile of sorted samples, with the rank formula the histogram documents.
fn exact_percentile(sorted: &[u64], q: f64) -> u64 {
    let count = sorted.len() as u64;
    let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
    sorted[(rank - 1) as usize]
}

/// `|reported − exact| ≤ exact / divisor`, in exact integer arithmetic.
fn within(reported: u64, exact: u64, divisor: u128) -> bool {
    u128::from(reported.abs_diff(exact)) * divisor <= u128::from(exact)
}

fn check_samples(samples: &[u64]) -> Result<(), TestCaseError> {
    let histogram = Histogram::new();
    samples.iter().for_each(|&value| histogram.record(value));
    let snapshot = histogram.snapshot();
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();

    prop_assert_eq!(snapshot.count(), samples.len() as u64);
    let exact_sum: u128 = samples.iter().map(|&value| u128::from(value)).sum();
    prop_assert_eq!(snapshot.sum(), u64::try_from(exact_sum).unwrap_or(u64::MAX));

    for q in [0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
        let exact = exact_percentile(&sorted, q);
        let reported = snapshot.percentile(q);
        prop_assert!(
            within(reported, exact, 64),
            "q {}: reported {} exact {}",
            q,
            reported,
            exact
        );
    }
    let (p50, p95, p99) = (snapshot.p50(), snapshot.p95(), snapshot.p99());
    prop_assert_eq!(p50, snapshot.percentile(0.5));
    prop_assert_eq!(p95, snapshot.percentile(0.95));
    prop_assert_eq!(p99, snapshot.percentile(0.99));

    let (exact_min, exact_max) = (sorted[0], sorted[sorted.len() - 1]);
    prop_assert!(snapshot.min() <= exact_min && within(snapshot.min(), exact_min, 32));
    prop_assert!(snapshot.max() >= exact_max && within(snapshot.max(), exact_max, 32));
    prop_assert!(snapshot.min() <= p50 && p50 <= p95 && p95 <= p99 && p99 <= snapshot.max());
    Ok(())
}

/// Values spread over every magnitude: a random bit length, then random bits below it.
fn any_magnitude() -> impl Strategy<Value = u64> {
    (0_u32..=64, any::<u64>()).prop_map(|(bits, raw)| match bits {
        0 => 0,
        64 => raw,
        bits => raw >> (64 - bits),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn tiny_values(samples in prop::collection::vec(0_u64..10, 1..2_000)) {
        check_samples(&samples)?;
    }

    #[test]
    fn microsecond_range(samples in prop::collection::vec(0_u64..1_000_000, 1..2_000)) {
        check_samples(&samples)?;
    }

    #[test]
    fn huge_range(samples in prop::collection::vec(0_u64..u64::MAX / 4, 1..2_000)) {
        check_samples(&samples)?;
    }

    #[test]
    fn full_range(samples in prop::collection::vec(any::<u64>(), 1..500)) {
        check_samples(&samples)?;
    }

    #[test]
    fn every_magnitude(samples in prop::collection::vec(any_magnitude(), 1..2_000)) {
        check_samples(&samples)?;
    }

    #[test]
    fn clustered_latencies(
        base in 1_000_u64..10_000_000,
        jitter in prop::collection::vec(0_u64..5_000, 1..2_000),
    ) {
        let samples: Vec<u64> = jitter.iter().map(|offset| base + offset).collect();
        check_samples(&samples)?;
    }
}
