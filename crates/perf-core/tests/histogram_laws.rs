//! Algebraic laws of histogram snapshots: subtract undoes merge, merge is commutative and
//! associative, counts and sums add up, and snapshots agree with recording the same values.

use proptest::prelude::*;
use resync_perf_core::{Histogram, HistogramSnapshot};

fn snapshot_of(values: &[u64]) -> HistogramSnapshot {
    let histogram = Histogram::new();
    values.iter().for_each(|&value| histogram.record(value));
    histogram.snapshot()
}

/// Values small enough that no sum of a few hundred of them saturates `u64`.
fn values() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(
        prop_oneof![0_u64..100, 0_u64..1_000_000, 0_u64..1_000_000_000_000],
        0..300,
    )
}

fn merged(a: &HistogramSnapshot, b: &HistogramSnapshot) -> HistogramSnapshot {
    let mut result = a.clone();
    result.merge(b);
    result
}

proptest! {
    #[test]
    fn subtract_undoes_merge(a in values(), b in values()) {
        let (a, b) = (snapshot_of(&a), snapshot_of(&b));
        prop_assert_eq!(merged(&a, &b).subtract(&b), a);
    }

    #[test]
    fn subtracting_itself_is_empty(a in values()) {
        let a = snapshot_of(&a);
        let empty = a.subtract(&a);
        prop_assert!(empty.is_empty());
        prop_assert_eq!(empty.count(), 0);
        prop_assert_eq!(empty.sum(), 0);
        prop_assert_eq!(empty.buckets().count(), 0);
        prop_assert_eq!(empty, HistogramSnapshot::default());
    }

    #[test]
    fn merge_is_commutative_and_associative(a in values(), b in values(), c in values()) {
        let (a, b, c) = (snapshot_of(&a), snapshot_of(&b), snapshot_of(&c));
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        prop_assert_eq!(merged(&a, &HistogramSnapshot::default()), a);
    }

    #[test]
    fn counts_and_sums_add_up(a in values(), b in values()) {
        let (snapshot_a, snapshot_b) = (snapshot_of(&a), snapshot_of(&b));
        let both = merged(&snapshot_a, &snapshot_b);
        prop_assert_eq!(both.count(), snapshot_a.count() + snapshot_b.count());
        prop_assert_eq!(both.sum(), snapshot_a.sum() + snapshot_b.sum());
        prop_assert_eq!(both.count(), (a.len() + b.len()) as u64);
        prop_assert_eq!(both.sum(), a.iter().chain(&b).sum::<u64>());
        let bucket_total: u64 = both.buckets().map(|(_, count)| count).sum();
        prop_assert_eq!(bucket_total, both.count());
        prop_assert_eq!(both.count_le(u64::MAX), both.count());
    }

    #[test]
    fn merge_equals_recording_everything(a in values(), b in values()) {
        let everything: Vec<u64> = a.iter().chain(&b).copied().collect();
        prop_assert_eq!(merged(&snapshot_of(&a), &snapshot_of(&b)), snapshot_of(&everything));
    }

    #[test]
    fn window_equals_recording_only_the_recent_values(older in values(), recent in values()) {
        let histogram = Histogram::new();
        older.iter().for_each(|&value| histogram.record(value));
        let before = histogram.snapshot();
        recent.iter().for_each(|&value| histogram.record(value));
        let window = histogram.snapshot().subtract(&before);
        prop_assert_eq!(window, snapshot_of(&recent));
    }

    #[test]
    fn buckets_ascend_and_count_le_is_monotonic(a in values(), bounds in prop::collection::vec(any::<u64>(), 1..20)) {
        let snapshot = snapshot_of(&a);
        let uppers: Vec<u64> = snapshot.buckets().map(|(upper, _)| upper).collect();
        prop_assert!(uppers.windows(2).all(|pair| pair[0] < pair[1]));
        prop_assert!(snapshot.buckets().all(|(_, count)| count > 0));
        let mut bounds = bounds;
        bounds.sort_unstable();
        let cumulative: Vec<u64> = bounds.iter().map(|&bound| snapshot.count_le(bound)).collect();
        prop_assert!(cumulative.windows(2).all(|pair| pair[0] <= pair[1]));
        for &bound in &bounds {
            let at_most = a.iter().filter(|&&value| value <= bound).count() as u64;
            prop_assert!(snapshot.count_le(bound) >= at_most);
        }
    }
}

#[test]
fn subtract_saturates_per_bucket() {
    let newer = snapshot_of(&[5, 5, 1_000]);
    let older = snapshot_of(&[5, 5, 5, 70]);
    let window = newer.subtract(&older);
    // Bucket 5 goes 2 − 3 → 0 instead of wrapping; bucket 70 exists only in `older`.
    assert_eq!(
        window.buckets().collect::<Vec<_>>(),
        snapshot_of(&[1_000]).buckets().collect::<Vec<_>>()
    );
    assert_eq!(window.count(), 1);
    assert_eq!(window.sum(), 1_010 - 85);
    // A larger older sum saturates at zero.
    assert_eq!(older.subtract(&newer).sum(), 0);
}
