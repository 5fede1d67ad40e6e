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

/// The smallest number of connections whose Erlang-C wait probability is at most
/// `max_wait_probability` for `load` Erlangs (at least 1).
#[must_use]
pub fn erlang_c_size(load: f64, max_wait_probability: f64) -> u32 {
    let mut servers = 1_u32;
    while erlang_c(servers, load) > max_wait_probability && servers < u32::MAX {
        servers += 1;
    }
    servers
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
        for load in [0.3, 1.0, 4.0, 9.5, 40.0] {
            let size = erlang_c_size(load, 0.05);
            assert!(erlang_c(size, load) <= 0.05);
            assert!(size == 1 || erlang_c(size - 1, load) > 0.05);
        }
    }
}
