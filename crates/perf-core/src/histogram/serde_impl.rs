//! Serde shape of [`HistogramSnapshot`]: its summary plus its buckets.
//!
//! ```json
//! {"count":3,"sum":1203,"mean":401.0,"min":1,"p50":1,"p95":1199,"p99":1199,"max":1215,
//!  "buckets":[[1,2],[1215,1]]}
//! ```
//!
//! Buckets are `[inclusive upper bound, count]` pairs. Deserializing rebuilds the snapshot from
//! `sum` and `buckets` alone; the summary figures are derived data and are ignored on input.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::HistogramSnapshot;

/// What a snapshot serializes to.
#[derive(Serialize)]
struct SnapshotOut {
    count: u64,
    sum: u64,
    mean: f64,
    min: u64,
    p50: u64,
    p95: u64,
    p99: u64,
    max: u64,
    buckets: Vec<(u64, u64)>,
}

/// What a snapshot deserializes from: the summary fields are accepted and ignored.
#[derive(Deserialize)]
struct SnapshotIn {
    #[serde(default)]
    sum: u64,
    #[serde(default)]
    buckets: Vec<(u64, u64)>,
}

impl Serialize for HistogramSnapshot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let summary = self.summary();
        SnapshotOut {
            count: summary.count,
            sum: summary.sum,
            mean: summary.mean,
            min: summary.min,
            p50: summary.p50,
            p95: summary.p95,
            p99: summary.p99,
            max: summary.max,
            buckets: self.buckets().collect(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for HistogramSnapshot {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let input = SnapshotIn::deserialize(deserializer)?;
        Ok(HistogramSnapshot::from_values(input.buckets, input.sum))
    }
}
