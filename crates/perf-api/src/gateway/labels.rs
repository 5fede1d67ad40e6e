//! The bounded label sets a gateway exchange is counted under: method, status class, cache
//! outcome and upstream outcome. Each maps to a small index, so recording is an array access.
//!
//! Every label value is written once: here, as the enums' `as_str()` (in `ALL` order) and
//! [`UPSTREAM_LABELS`]; the L2's likewise in `l2/mod.rs`, and its two sets without an enum
//! (a store's result, an invalidation's direction) in their count types' `by_label()`. The
//! count types list their counters by label with `by_label()`, and whatever shows a label
//! reads it from there: their JSON ([`serialize_by_label!`]), the `/metrics` families, and
//! the API's views (`views/labelled.rs`).

use axum::http::Method;

/// How the response cache took part in a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CacheOutcome {
    /// Served from a fresh cached response.
    Hit,
    /// Not in the cache (or not fresh): fetched from the upstream, possibly stored.
    Miss,
    /// Served from a stale cached response (the upstream failed within the stale-if-error
    /// grace).
    Stale,
    /// The cache was not consulted: a write, a `no-store` request, a body too large to cache.
    Bypass,
}

impl CacheOutcome {
    /// Every outcome, in label order.
    pub const ALL: [Self; 4] = [Self::Hit, Self::Miss, Self::Stale, Self::Bypass];

    /// The label value: `hit`, `miss`, `stale` or `bypass`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Stale => "stale",
            Self::Bypass => "bypass",
        }
    }

    /// Whether the body came from the cache (a hit or a stale answer), not from the upstream.
    #[must_use]
    pub const fn served_from_cache(self) -> bool {
        matches!(self, Self::Hit | Self::Stale)
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// How the upstream exchange a request made ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamOutcome {
    /// The upstream answered with this status (5xx counts as an upstream error).
    Answered(u16),
    /// No connection could be made (gateway answered 502).
    Unreachable,
    /// The exchange broke mid-way (reset, protocol error; 502).
    Failed,
    /// No response within TWS_READ_TIMEOUT (504).
    TimedOut,
    /// The HTTP pool was exhausted (503).
    Exhausted,
}

/// Upstream outcome label values, in index order.
pub(crate) const UPSTREAM_LABELS: [&str; 8] = [
    "answered_2xx",
    "answered_3xx",
    "answered_4xx",
    "answered_5xx",
    "unreachable",
    "failed",
    "timed_out",
    "exhausted",
];

impl UpstreamOutcome {
    /// The label value: `answered_2xx` … `answered_5xx`, `unreachable`, `failed`,
    /// `timed_out` or `exhausted`. An answer below 300 counts as `answered_2xx` (a 1xx is
    /// never a final answer to a proxied request), one of 600 or above as `answered_5xx`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        UPSTREAM_LABELS[self.index()]
    }

    /// Whether it counts as an upstream error: a 5xx answer, or no answer at all.
    #[must_use]
    pub const fn is_error(self) -> bool {
        !matches!(self, Self::Answered(status) if status < 500)
    }

    pub(crate) const fn index(self) -> usize {
        match self {
            Self::Answered(status) => match status {
                0..=299 => 0,
                300..=399 => 1,
                400..=499 => 2,
                _ => 3,
            },
            Self::Unreachable => 4,
            Self::Failed => 5,
            Self::TimedOut => 6,
            Self::Exhausted => 7,
        }
    }
}

/// A request method as counted: the seven methods a gateway sees, every other one as
/// `OTHER` (so a client cannot grow the label set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MethodLabel {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
    /// `OPTIONS`
    Options,
    /// Any other method (`TRACE`, `CONNECT`, extensions).
    Other,
}

impl MethodLabel {
    /// Every label, in label order.
    pub const ALL: [Self; 8] = [
        Self::Get,
        Self::Head,
        Self::Post,
        Self::Put,
        Self::Patch,
        Self::Delete,
        Self::Options,
        Self::Other,
    ];

    /// The label of `method`.
    #[inline]
    #[must_use]
    pub fn of(method: &Method) -> Self {
        // `Method`'s equality compares an enum tag for the standard methods: no string work.
        if *method == Method::GET {
            Self::Get
        } else if *method == Method::HEAD {
            Self::Head
        } else if *method == Method::POST {
            Self::Post
        } else if *method == Method::PUT {
            Self::Put
        } else if *method == Method::PATCH {
            Self::Patch
        } else if *method == Method::DELETE {
            Self::Delete
        } else if *method == Method::OPTIONS {
            Self::Options
        } else {
            Self::Other
        }
    }

    /// The label value: `GET`, `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE`, `OPTIONS` or
    /// `OTHER`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
            Self::Other => "OTHER",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// The class of a status sent to a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatusClass {
    /// 1xx
    Informational,
    /// 2xx
    Success,
    /// 3xx
    Redirection,
    /// 4xx
    ClientError,
    /// 5xx
    ServerError,
}

impl StatusClass {
    /// Every class, in label order.
    pub const ALL: [Self; 5] = [
        Self::Informational,
        Self::Success,
        Self::Redirection,
        Self::ClientError,
        Self::ServerError,
    ];

    /// The class of `status`; a status HTTP does not define counts in the nearest class
    /// (below 100 as 1xx, 600 and above as 5xx).
    #[inline]
    #[must_use]
    pub const fn of(status: u16) -> Self {
        match status {
            0..=199 => Self::Informational,
            200..=299 => Self::Success,
            300..=399 => Self::Redirection,
            400..=499 => Self::ClientError,
            _ => Self::ServerError,
        }
    }

    /// The label value: `1xx` … `5xx`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Informational => "1xx",
            Self::Success => "2xx",
            Self::Redirection => "3xx",
            Self::ClientError => "4xx",
            Self::ServerError => "5xx",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// Labels serialize as their label values (`as_str()`).
macro_rules! serialize_as_label {
    ($($label:ty),*) => {$(
        impl serde::Serialize for $label {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    )*};
}

/// Count types serialize as `{label: count, …}`, in label order, from their `by_label()`.
macro_rules! serialize_by_label {
    ($($counts:ty),*) => {$(
        impl serde::Serialize for $counts {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_map(self.by_label())
            }
        }
    )*};
}

pub(crate) use {serialize_as_label, serialize_by_label};

serialize_as_label!(CacheOutcome, UpstreamOutcome, MethodLabel, StatusClass);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_has_a_bounded_label() {
        let cases = [
            (Method::GET, "GET"),
            (Method::HEAD, "HEAD"),
            (Method::POST, "POST"),
            (Method::PUT, "PUT"),
            (Method::PATCH, "PATCH"),
            (Method::DELETE, "DELETE"),
            (Method::OPTIONS, "OPTIONS"),
            (Method::TRACE, "OTHER"),
            (Method::CONNECT, "OTHER"),
            (Method::from_bytes(b"PURGE").unwrap_or_default(), "OTHER"),
        ];
        for (method, label) in cases {
            assert_eq!(MethodLabel::of(&method).as_str(), label, "{method}");
        }
        for (index, label) in MethodLabel::ALL.into_iter().enumerate() {
            assert_eq!(label.index(), index);
        }
    }

    #[test]
    fn statuses_fall_in_their_class_and_odd_ones_in_the_nearest() {
        let cases = [
            (0, "1xx"),
            (100, "1xx"),
            (199, "1xx"),
            (200, "2xx"),
            (304, "3xx"),
            (404, "4xx"),
            (499, "4xx"),
            (500, "5xx"),
            (599, "5xx"),
            (999, "5xx"),
        ];
        for (status, class) in cases {
            assert_eq!(StatusClass::of(status).as_str(), class, "{status}");
        }
        for (index, class) in StatusClass::ALL.into_iter().enumerate() {
            assert_eq!(class.index(), index);
        }
    }

    #[test]
    fn upstream_outcomes_have_labels_and_errors_are_5xx_or_no_answer() {
        let cases = [
            (UpstreamOutcome::Answered(101), "answered_2xx", false),
            (UpstreamOutcome::Answered(200), "answered_2xx", false),
            (UpstreamOutcome::Answered(302), "answered_3xx", false),
            (UpstreamOutcome::Answered(429), "answered_4xx", false),
            (UpstreamOutcome::Answered(500), "answered_5xx", true),
            (UpstreamOutcome::Answered(503), "answered_5xx", true),
            (UpstreamOutcome::Answered(700), "answered_5xx", true),
            (UpstreamOutcome::Unreachable, "unreachable", true),
            (UpstreamOutcome::Failed, "failed", true),
            (UpstreamOutcome::TimedOut, "timed_out", true),
            (UpstreamOutcome::Exhausted, "exhausted", true),
        ];
        for (outcome, label, error) in cases {
            assert_eq!(outcome.as_str(), label, "{outcome:?}");
            assert_eq!(outcome.is_error(), error, "{outcome:?}");
        }
        assert!(CacheOutcome::Hit.served_from_cache());
        assert!(CacheOutcome::Stale.served_from_cache());
        assert!(!CacheOutcome::Miss.served_from_cache());
        assert!(!CacheOutcome::Bypass.served_from_cache());
    }
}
