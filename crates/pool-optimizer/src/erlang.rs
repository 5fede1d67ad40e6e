//! Erlang C: the probability that an arrival waits in an M/M/c queue.

/// Probability that a request waits for one of `servers` connections when the offered load
/// is `load` Erlangs (λ·W). 1 when `servers <= load` (the queue grows without bound).
///
/// Computed through the Erlang B recursion `B(k) = A·B(k−1) / (k + A·B(k−1))`, which stays
/// finite for any size, then `C = c·B / (c − A·(1 − B))`.
#[must_use]
pub fn erlang_c(servers: u32, load: f64) -> f64 {
    if load.is_nan() || load <= 0.0 {
        return 0.0;
    }
    let c = f64::from(servers);
    if c <= load {
        return 1.0;
    }
    let mut blocking = 1.0;
    for k in 1..=servers {
        blocking = load * blocking / (f64::from(k) + load * blocking);
    }
    (c * blocking / (c - load * (1.0 - blocking))).clamp(0.0, 1.0)
}

/// The smallest number of connections, at most `cap`, whose Erlang-C wait probability is at
/// most `max_wait_probability` for `load` Erlangs (at least 1).
///
/// `None` when no size up to `cap` meets the target (the answer is "more than `cap`") or
/// `load` is not a finite number. One pass of the Erlang-B recursion, checking C at each
/// size: O(answer), never more than `cap` steps.
#[must_use]
pub fn erlang_c_size(load: f64, max_wait_probability: f64, cap: u32) -> Option<u32> {
    if !load.is_finite() {
        return None;
    }
    if load <= 0.0 {
        return Some(1);
    }
    if load >= f64::from(cap) {
        // C(c) = 1 for every c ≤ load.
        return None;
    }
    let mut blocking = 1.0;
    for servers in 1..=cap {
        let c = f64::from(servers);
        blocking = load * blocking / (c + load * blocking);
        if c > load {
            let waiting = (c * blocking / (c - load * (1.0 - blocking))).clamp(0.0, 1.0);
            if waiting <= max_wait_probability {
                return Some(servers);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_published_values() {
        // Classic call-centre example: 10 Erlangs on 11 agents waits with p ≈ 0.682,
        // on 13 agents p ≈ 0.2853 (tables of the Erlang C formula).
        assert!((erlang_c(11, 10.0) - 0.6821).abs() < 1e-3);
        assert!((erlang_c(13, 10.0) - 0.2853).abs() < 1e-3);
        assert_eq!(erlang_c(4, 4.0), 1.0);
        assert_eq!(erlang_c(3, 0.0), 0.0);
    }

    #[test]
    fn size_is_the_smallest_meeting_the_target() {
        for load in [0.0, 0.3, 1.0, 4.0, 9.5, 40.0] {
            let size = erlang_c_size(load, 0.05, 1_000).expect("under the cap");
            assert!(erlang_c(size, load) <= 0.05);
            assert!(size == 1 || erlang_c(size - 1, load) > 0.05);
        }
    }

    #[test]
    fn huge_or_non_finite_loads_stop_at_the_cap() {
        assert_eq!(erlang_c_size(f64::INFINITY, 0.05, 400), None);
        assert_eq!(erlang_c_size(f64::NAN, 0.05, 400), None);
        assert_eq!(erlang_c_size(1e12, 0.05, 400), None);
        // 399 Erlangs need more than 400 connections at 5 %.
        assert_eq!(erlang_c_size(399.0, 0.05, 400), None);
        let needed = erlang_c_size(399.0, 0.05, u32::MAX).expect("finite answer");
        assert!(needed > 400 && erlang_c(needed, 399.0) <= 0.05);
    }
}
