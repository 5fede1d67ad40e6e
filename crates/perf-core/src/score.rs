//! Efficiency-score helpers: every component's 0–100 score is a weighted mean of unit values.
//!
//! A component turns each measured aspect into a value in `[0, 1]` (1 = ideal), usually with
//! [`ratio`] (e.g. hits / lookups) or [`falloff`] (e.g. p95 wait against its target), and
//! combines them with [`weighted_score`]:
//!
//! ```text
//! score = 100 · Σ wᵢ · clamp_unit(vᵢ) / Σ wᵢ      (over parts with a finite weight wᵢ > 0)
//! ```
//!
//! The per-component formulas live with the components and are listed in
//! `docs/PERFORMANCE_OPTIMIZATION.md`.

/// Weighted mean of `(weight, value)` parts, scaled to 0–100.
///
/// Values are clamped to `[0, 1]` (NaN counts as 0). Parts whose weight is not finite or not
/// positive are ignored; with no weight left the score is 0. The result is always in
/// `[0, 100]` and never NaN.
///
/// ```
/// use resync_perf_core::weighted_score;
/// // Hit ratio 0.9 weighs twice as much as memory headroom 0.6: (2·0.9 + 0.6) / 3 = 0.8.
/// assert!((weighted_score(&[(2.0, 0.9), (1.0, 0.6)]) - 80.0).abs() < 1e-9);
/// assert_eq!(weighted_score(&[]), 0.0);
/// ```
#[must_use]
pub fn weighted_score(parts: &[(f64, f64)]) -> f64 {
    let usable = |weight: &f64| weight.is_finite() && *weight > 0.0;
    // Weights are scaled by the largest one so that huge weights cannot overflow the sums.
    let largest = parts
        .iter()
        .map(|&(weight, _)| weight)
        .filter(usable)
        .fold(0.0, f64::max);
    if largest <= 0.0 {
        return 0.0;
    }
    let (weighted, total_weight) = parts.iter().filter(|(weight, _)| usable(weight)).fold(
        (0.0, 0.0),
        |(weighted, total), &(weight, value)| {
            let weight = weight / largest;
            (weighted + weight * clamp_unit(value), total + weight)
        },
    );
    (weighted / total_weight * 100.0).clamp(0.0, 100.0)
}

/// `numerator / denominator`, or `None` when the denominator is not positive or either side
/// (or the quotient) is not finite: "no data" stays distinguishable from "0 %".
///
/// ```
/// use resync_perf_core::ratio;
/// assert_eq!(ratio(3.0, 4.0), Some(0.75));
/// assert_eq!(ratio(0.0, 0.0), None);
/// ```
#[must_use]
pub fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    if !(denominator.is_finite() && denominator > 0.0 && numerator.is_finite()) {
        return None;
    }
    let quotient = numerator / denominator;
    quotient.is_finite().then_some(quotient)
}

/// Clamps to `[0, 1]`; NaN becomes 0.
#[must_use]
pub fn clamp_unit(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// A unit value for a "lower is better" figure: 1 at or below `good`, 0 at or above `bad`,
/// linear in between (e.g. p95 acquire wait against its target and its timeout).
///
/// NaN input gives 0. When `bad <= good` the step is at `good`: 1 at or below it, else 0.
///
/// ```
/// use resync_perf_core::falloff;
/// assert_eq!(falloff(5.0, 10.0, 110.0), 1.0);
/// assert_eq!(falloff(60.0, 10.0, 110.0), 0.5);
/// assert_eq!(falloff(500.0, 10.0, 110.0), 0.0);
/// ```
#[must_use]
pub fn falloff(value: f64, good: f64, bad: f64) -> f64 {
    if value.is_nan() {
        return 0.0;
    }
    if value <= good {
        return 1.0;
    }
    if bad <= good || value >= bad {
        return 0.0;
    }
    clamp_unit((bad - value) / (bad - good))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_score_edge_cases() {
        let cases: [(&[(f64, f64)], f64); 9] = [
            (&[], 0.0),
            (&[(0.0, 1.0)], 0.0),
            (&[(1.0, 1.0)], 100.0),
            (&[(1.0, 0.25), (3.0, 0.75)], 62.5),
            (&[(1.0, 2.0), (1.0, -1.0)], 50.0),
            (&[(1.0, f64::NAN), (1.0, 1.0)], 50.0),
            (&[(f64::NAN, 1.0), (1.0, 0.5)], 50.0),
            (&[(-4.0, 1.0), (f64::INFINITY, 1.0), (2.0, 0.0)], 0.0),
            (&[(f64::MAX, 1.0), (f64::MAX, 0.5)], 75.0),
        ];
        for (parts, expected) in cases {
            let score = weighted_score(parts);
            assert!(
                (score - expected).abs() < 1e-9,
                "{parts:?}: {score} != {expected}"
            );
        }
    }

    #[test]
    fn ratio_refuses_meaningless_denominators() {
        assert_eq!(ratio(1.0, 2.0), Some(0.5));
        assert_eq!(ratio(0.0, 5.0), Some(0.0));
        for (numerator, denominator) in [
            (1.0, 0.0),
            (1.0, -2.0),
            (1.0, f64::NAN),
            (1.0, f64::INFINITY),
            (f64::NAN, 1.0),
            (f64::MAX, f64::MIN_POSITIVE),
        ] {
            assert_eq!(
                ratio(numerator, denominator),
                None,
                "{numerator}/{denominator}"
            );
        }
    }

    #[test]
    fn clamp_unit_bounds_and_nan() {
        let cases = [
            (-1.0, 0.0),
            (0.3, 0.3),
            (7.0, 1.0),
            (f64::NAN, 0.0),
            (f64::INFINITY, 1.0),
            (f64::NEG_INFINITY, 0.0),
        ];
        for (input, expected) in cases {
            assert_eq!(clamp_unit(input), expected, "{input}");
        }
    }

    #[test]
    fn falloff_is_linear_between_good_and_bad() {
        assert_eq!(falloff(10.0, 10.0, 20.0), 1.0);
        assert!((falloff(12.5, 10.0, 20.0) - 0.75).abs() < 1e-12);
        assert_eq!(falloff(20.0, 10.0, 20.0), 0.0);
        assert_eq!(falloff(f64::NAN, 10.0, 20.0), 0.0);
        assert_eq!(falloff(11.0, 10.0, 10.0), 0.0);
        assert_eq!(falloff(9.0, 10.0, 5.0), 1.0);
    }
}
