//! Unit tests of the L2 recorder and its snapshot (the health rule's are in `health.rs`).

use std::time::Duration;

use proptest::prelude::*;
use resync_perf_core::Delta;

use super::*;

#[test]
fn counter_indices_are_distinct_and_cover_the_stripe() {
    let mut seen = [false; COUNTERS];
    let indices = L2Lookup::ALL
        .map(|outcome| LOOKUPS + outcome.index())
        .into_iter()
        .chain([STORED, STORE_ERRORS])
        .chain(L2Lease::ALL.map(|lease| LEASES + lease.index()))
        .chain([INVALIDATIONS_SENT, INVALIDATIONS_RECEIVED, L1_FLUSHES])
        .chain(L2Op::ALL.map(|op| ERRORS + op.index()));
    for index in indices {
        assert!(!seen[index], "{index} twice");
        seen[index] = true;
    }
    assert!(seen.iter().all(|seen| *seen));
    for (index, outcome) in L2Lookup::ALL.into_iter().enumerate() {
        assert_eq!(outcome.index(), index);
    }
    for (index, op) in L2Op::ALL.into_iter().enumerate() {
        assert_eq!(op.index(), index);
    }
}

#[test]
fn every_recorder_lands_in_its_figure() {
    let l2 = L2Stats::new();
    assert!(!l2.is_available(), "unavailable until said otherwise");
    let micros = Duration::from_micros;
    l2.record_lookup(L2Lookup::Hit, Some(micros(100)));
    l2.record_lookup(L2Lookup::Hit, Some(micros(100)));
    l2.record_lookup(L2Lookup::Miss, Some(micros(200)));
    l2.record_lookup(L2Lookup::OtherVersion, Some(micros(300)));
    l2.record_lookup(L2Lookup::Error, Some(micros(50_000)));
    l2.record_lookup(L2Lookup::Skipped, None);
    l2.record_store(true, micros(400));
    l2.record_store(false, micros(500));
    l2.record_lease(L2Lease::Won);
    l2.record_lease(L2Lease::Waited);
    l2.record_lease(L2Lease::Waited);
    l2.record_lease(L2Lease::Expired);
    l2.record_invalidation_sent();
    l2.record_invalidation_received();
    l2.record_invalidation_received();
    l2.record_l1_flush();
    l2.record_error(
        L2Op::Store,
        "READONLY You can't write against a read only replica",
    );
    l2.record_error(L2Op::Subscribe, "connection reset");
    l2.set_available(true, Some("ignored when available"));

    let metrics = l2.metrics();
    assert_eq!(
        metrics.lookups,
        L2LookupCounts {
            hit: 2,
            miss: 1,
            other_version: 1,
            error: 1,
            skipped: 1
        }
    );
    assert_eq!(metrics.lookups.attempted(), 5);
    assert_eq!(metrics.lookups.total(), 6);
    assert_eq!(metrics.hit_rate(), Some(0.5), "2 of 4 answered lookups");
    assert_eq!(
        metrics.stores,
        L2StoreCounts {
            stored: 1,
            error: 1
        }
    );
    assert_eq!(
        metrics.lookup_latency.count(),
        5,
        "skipped lookups are not timed"
    );
    assert_eq!(metrics.store_latency.count(), 2);
    assert_eq!(
        metrics.leases,
        L2LeaseCounts {
            won: 1,
            waited: 2,
            expired: 1
        }
    );
    assert_eq!(metrics.invalidations.sent, 1);
    assert_eq!(metrics.invalidations.received, 2);
    assert_eq!(metrics.l1_flushes, 1);
    assert_eq!(metrics.errors.store, 1);
    assert_eq!(metrics.errors.subscribe, 1);
    assert_eq!(metrics.errors.total(), 2);
    assert!(metrics.available);
    assert_eq!(metrics.unavailable_reason, None);
    assert_eq!(metrics.last_error.as_deref(), Some("connection reset"));
    assert_eq!(metrics.last_error_op, Some(L2Op::Subscribe));
    assert!(metrics.last_error_age_seconds.is_some_and(|age| age < 60.0));
    assert_eq!(metrics.operations(), 7);
    assert_eq!(metrics.error_rate(), Some(2.0 / 7.0));
    assert!(format!("{l2:?}").contains("lookups: 6"));
}

#[test]
fn availability_keeps_its_reason_only_while_unavailable() {
    let l2 = L2Stats::new();
    l2.set_available(false, Some("redis: connection refused"));
    let down = l2.metrics();
    assert!(!down.available);
    assert_eq!(
        down.unavailable_reason.as_deref(),
        Some("redis: connection refused")
    );
    l2.set_available(true, None);
    assert!(l2.is_available());
    assert_eq!(l2.metrics().unavailable_reason, None);
    // A long message is cut at a character boundary.
    let long = "é".repeat(L2_MAX_MESSAGE_BYTES);
    l2.set_available(false, Some(&long));
    l2.record_error(L2Op::Lookup, &long);
    let cut = l2.metrics();
    let reason = cut.unavailable_reason.unwrap_or_default();
    assert_eq!(reason.len(), L2_MAX_MESSAGE_BYTES);
    assert!(reason.chars().all(|c| c == 'é'));
    assert_eq!(
        cut.last_error.unwrap_or_default().len(),
        L2_MAX_MESSAGE_BYTES
    );
    l2.set_available(false, None);
    assert_eq!(l2.metrics().unavailable_reason, None);
}

#[test]
fn a_window_subtracts_the_counters_and_keeps_the_newer_state() {
    let l2 = L2Stats::new();
    l2.record_lookup(L2Lookup::Hit, Some(Duration::from_micros(10)));
    l2.record_error(L2Op::Lookup, "old");
    let older = l2.metrics();
    l2.record_lookup(L2Lookup::Miss, Some(Duration::from_micros(10)));
    l2.record_lease(L2Lease::Won);
    l2.record_error(L2Op::Invalidate, "new");
    l2.set_available(false, Some("down"));
    let window = l2.metrics().delta(&older);
    assert_eq!(window.lookups.hit, 0);
    assert_eq!(window.lookups.miss, 1);
    assert_eq!(window.lookup_latency.count(), 1);
    assert_eq!(window.leases.won, 1);
    assert_eq!(window.errors.lookup, 0);
    assert_eq!(window.errors.invalidate, 1);
    assert_eq!(window.hit_rate(), Some(0.0));
    assert!(!window.available);
    assert_eq!(window.unavailable_reason.as_deref(), Some("down"));
    assert_eq!(window.last_error.as_deref(), Some("new"));
    // An older snapshot that is larger (a recreated recorder) is "nothing happened".
    assert_eq!(older.delta(&l2.metrics()).lookups.total(), 0);
}

#[test]
fn serializes_counts_and_state_with_labels() {
    let l2 = L2Stats::new();
    l2.record_lookup(L2Lookup::OtherVersion, Some(Duration::from_micros(10)));
    l2.record_error(L2Op::Lease, "timeout");
    let json = serde_json::to_value(l2.metrics()).unwrap_or_default();
    assert_eq!(json["lookups"]["other_version"], 1);
    assert_eq!(json["errors"]["lease"], 1);
    assert_eq!(json["last_error_op"], "lease");
    assert_eq!(json["last_error"], "timeout");
    assert_eq!(json["available"], false);
    assert_eq!(json["unavailable_reason"], serde_json::Value::Null);
    assert_eq!(json["lookup_latency"]["count"], 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Whatever several threads record, each figure is the exact sum of their records.
    #[test]
    fn counters_sum_exactly_across_threads(
        plans in proptest::collection::vec(
            proptest::collection::vec((0_usize..14, 0_u64..5_000), 0..200),
            1..5,
        ),
    ) {
        let l2 = L2Stats::new();
        std::thread::scope(|scope| {
            for plan in &plans {
                let l2 = l2.clone();
                scope.spawn(move || {
                    for &(what, micros) in plan {
                        let took = Duration::from_micros(micros);
                        match what {
                            0..=3 => l2.record_lookup(L2Lookup::ALL[what], Some(took)),
                            4 => l2.record_lookup(L2Lookup::Skipped, None),
                            5 => l2.record_store(true, took),
                            6 => l2.record_store(false, took),
                            7..=9 => l2.record_lease(L2Lease::ALL[what - 7]),
                            10 => l2.record_invalidation_sent(),
                            11 => l2.record_invalidation_received(),
                            12 => l2.record_l1_flush(),
                            _ => l2.record_error(L2Op::ALL[(micros % 5) as usize], "failed"),
                        }
                    }
                });
            }
        });
        let mut expected = [0_u64; 14];
        let mut by_op = [0_u64; 5];
        for &(what, micros) in plans.iter().flatten() {
            expected[what] += 1;
            if what == 13 {
                by_op[(micros % 5) as usize] += 1;
            }
        }
        let m = l2.metrics();
        let shown = [
            m.lookups.hit, m.lookups.miss, m.lookups.other_version, m.lookups.error,
            m.lookups.skipped, m.stores.stored, m.stores.error, m.leases.won,
            m.leases.waited, m.leases.expired, m.invalidations.sent,
            m.invalidations.received, m.l1_flushes, m.errors.total(),
        ];
        prop_assert_eq!(shown, expected);
        prop_assert_eq!(m.errors.by_label().map(|(_, count)| count), by_op);
        prop_assert_eq!(m.lookup_latency.count(), expected[..4].iter().sum::<u64>());
        prop_assert_eq!(m.store_latency.count(), expected[5] + expected[6]);
        prop_assert_eq!(m.last_error.is_some(), expected[13] > 0);
    }
}
