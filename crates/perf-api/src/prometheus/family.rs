//! One metric family and its series, and the collector that encodes them.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use resync_perf_core::HistogramSnapshot;

use super::families::{
    cache_families, gateway_families, gateway_l2_families, pool_families, process_families,
    resource_families,
};
use super::process::ProcessStats;
use super::{Exposition, LE_NANOS, NANOS_PER_SECOND};

/// One value of a series.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Histogram(Buckets),
    /// An info metric's 1.
    Info,
}

impl From<u64> for Value {
    fn from(value: u64) -> Self {
        Self::Unsigned(value)
    }
}

impl From<u32> for Value {
    fn from(value: u32) -> Self {
        Self::Unsigned(u64::from(value))
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Self::Signed(value)
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Self {
        Self::Float(value)
    }
}

impl From<&HistogramSnapshot> for Value {
    fn from(snapshot: &HistogramSnapshot) -> Self {
        Self::Histogram(Buckets::from_nanos(snapshot))
    }
}

/// A histogram in seconds, as the encoders take it: per-bucket (not cumulative) counts by
/// upper bound, the last bound `+Inf`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Buckets {
    pub(super) sum_seconds: f64,
    pub(super) count: u64,
    pub(super) buckets: Vec<(f64, u64)>,
}

impl Buckets {
    /// Converts a snapshot in nanoseconds to [`LE_NANOS`] buckets in seconds.
    pub(super) fn from_nanos(snapshot: &HistogramSnapshot) -> Self {
        let mut buckets = Vec::with_capacity(LE_NANOS.len() + 1);
        let mut below = 0_u64;
        for bound in LE_NANOS {
            // `count_le` is monotonic and at most `count()`, so these never underflow and
            // the encoders' running sums end exactly at `count()`.
            let cumulative = snapshot.count_le(bound).max(below);
            buckets.push((bound as f64 / NANOS_PER_SECOND, cumulative - below));
            below = cumulative;
        }
        let count = snapshot.count().max(below);
        buckets.push((f64::INFINITY, count - below));
        Self {
            sum_seconds: snapshot.sum() as f64 / NANOS_PER_SECOND,
            count,
            buckets,
        }
    }
}

pub(super) type Labels = Vec<(&'static str, String)>;

/// A label value and how to read its figure from a snapshot.
pub(super) type Figure<T> = (&'static str, fn(&T) -> u64);

/// One metric family: its descriptor and every series.
#[derive(Debug)]
pub(super) struct Family {
    /// The descriptor name: the exposed name without its unit and without the `_total` or
    /// `_info` the encoders append.
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    metric_type: MetricType,
    series: Vec<(Labels, Value)>,
}

impl Family {
    /// A family exposed (in Prometheus text) as `exposed`. A `_seconds` or `_bytes` suffix
    /// becomes the OpenMetrics unit.
    pub(super) fn new(exposed: &'static str, help: &'static str, metric_type: MetricType) -> Self {
        let name = match metric_type {
            MetricType::Counter => exposed.strip_suffix("_total"),
            MetricType::Info => exposed.strip_suffix("_info"),
            _ => None,
        }
        .unwrap_or(exposed);
        let (name, unit) = if let Some(base) = name.strip_suffix("_seconds") {
            (base, Some(Unit::Seconds))
        } else if let Some(base) = name.strip_suffix("_bytes") {
            (base, Some(Unit::Bytes))
        } else {
            (name, None)
        };
        Self {
            name,
            help,
            unit,
            metric_type,
            series: Vec::new(),
        }
    }

    pub(super) fn counter(exposed: &'static str, help: &'static str) -> Self {
        Self::new(exposed, help, MetricType::Counter)
    }

    pub(super) fn gauge(exposed: &'static str, help: &'static str) -> Self {
        Self::new(exposed, help, MetricType::Gauge)
    }

    pub(super) fn histogram(exposed: &'static str, help: &'static str) -> Self {
        Self::new(exposed, help, MetricType::Histogram)
    }

    /// Adds one series per item.
    pub(super) fn series<I, V>(mut self, series: I) -> Self
    where
        I: IntoIterator<Item = (Labels, V)>,
        V: Into<Value>,
    {
        self.series.extend(
            series
                .into_iter()
                .map(|(labels, value)| (labels, value.into())),
        );
        self
    }

    /// Adds one unlabelled series when the value is known.
    pub(super) fn single<V: Into<Value>>(self, value: Option<V>) -> Self {
        self.series(value.map(|value| (Labels::new(), value)))
    }

    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let mut metric = encoder.encode_descriptor(
            self.name,
            self.help,
            self.unit.as_ref(),
            self.metric_type,
        )?;
        for (labels, value) in &self.series {
            if matches!(value, Value::Info) {
                metric.encode_info(labels)?;
                continue;
            }
            let mut series = metric.encode_family(labels)?;
            let counter = self.metric_type == MetricType::Counter;
            match value {
                Value::Unsigned(value) if counter => {
                    series.encode_counter::<NoLabelSet, _, u64>(value, None)?;
                }
                Value::Float(value) if counter => {
                    series.encode_counter::<NoLabelSet, _, f64>(value, None)?;
                }
                Value::Unsigned(value) => series.encode_gauge(value)?,
                Value::Signed(value) => series.encode_gauge(value)?,
                Value::Float(value) => series.encode_gauge(value)?,
                Value::Histogram(histogram) => series.encode_histogram::<NoLabelSet>(
                    histogram.sum_seconds,
                    histogram.count,
                    &histogram.buckets,
                    None,
                )?,
                Value::Info => {}
            }
        }
        Ok(())
    }
}

/// Every family of one scrape, owned so that the registry can hold it.
#[derive(Debug)]
pub(super) struct Families(Vec<Family>);

impl Families {
    pub(super) fn of(exposition: &Exposition<'_>, process: &ProcessStats) -> Self {
        let mut families = Vec::with_capacity(64);
        families.extend(cache_families(exposition.caches));
        families.extend(pool_families(exposition.pools));
        families.extend(resource_families(exposition.kinds));
        families.extend(gateway_families(exposition.gateway));
        families.extend(gateway_l2_families(exposition.gateway_l2));
        families.push(
            Family::gauge(
                "resync_health_status",
                "Health of each component, and of the whole as component overall: 0 healthy, 1 degraded, 2 critical.",
            )
            .series(exposition.health.iter().map(|(component, status)| {
                (vec![("component", component.clone())], status.as_gauge())
            })),
        );
        let mut build = Family::new(
            "resync_build_info",
            "The Resync version serving these metrics; always 1.",
            MetricType::Info,
        );
        build.series.push((
            vec![("version", env!("CARGO_PKG_VERSION").to_owned())],
            Value::Info,
        ));
        families.push(build);
        families.extend(process_families(process));
        families.retain(|family| !family.series.is_empty());
        Self(families)
    }

    /// A guess of the encoded size, to allocate the output once.
    pub(super) fn estimated_len(&self) -> usize {
        self.0
            .iter()
            .map(|family| {
                let lines: usize = family
                    .series
                    .iter()
                    .map(|(_, value)| match value {
                        Value::Histogram(histogram) => histogram.buckets.len() + 2,
                        _ => 1,
                    })
                    .sum();
                160 + 96 * lines
            })
            .sum()
    }
}

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        self.0
            .iter()
            .try_for_each(|family| family.encode(&mut encoder))
    }
}

/// One series per item, labelled with its name.
pub(super) fn per_item<'a, T, V>(
    items: &'a [T],
    key: &'static str,
    name: fn(&T) -> &String,
    value: fn(&'a T) -> V,
) -> Vec<(Labels, V)> {
    items
        .iter()
        .map(|item| (vec![(key, name(item).clone())], value(item)))
        .collect()
}

/// One series per item and figure, labelled with the item's name and `label = figure`.
pub(super) fn per_label<T>(
    items: &[T],
    key: &'static str,
    name: fn(&T) -> &String,
    label: &'static str,
    figures: &[Figure<T>],
) -> Vec<(Labels, u64)> {
    items
        .iter()
        .flat_map(|item| {
            figures.iter().map(move |&(figure, value)| {
                (
                    vec![(key, name(item).clone()), (label, figure.to_owned())],
                    value(item),
                )
            })
        })
        .collect()
}
