//! Metrics through the `metrics` facade (feature `metrics`): whatever recorder the service
//! installed (Prometheus, OpenTelemetry, …) receives them. Handles are registered once, when
//! the verifier is built, so counting a request costs an atomic add: install the recorder
//! before building the verifier (before attaching the fairing). Without the feature every
//! method is empty.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `apikey_requests_total` | counter | `outcome` ([`RequestOutcome::label`]) |
//! | `apikey_store_queries_total` | counter | |
//! | `apikey_filter_refusals_total` | counter | |
//! | `apikey_store_lookup_seconds` | histogram | |
//! | `apikey_cache_entries` | gauge | |
//! | `apikey_feed_live` | gauge (1 live, 0 not) | |
//! | `apikey_limits_fallback` | gauge (1 while shared limits fall back to per instance) | |
//!
//! No label carries a key, a digest or a key name.

use std::time::Duration;

use super::RequestOutcome;

#[cfg(feature = "metrics")]
mod on {
    use std::time::Duration;

    use metrics::{
        counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
    };
    use metrics::{Counter, Gauge, Histogram, Unit};

    use super::RequestOutcome;

    /// The verifier's metric handles.
    pub(crate) struct Meters {
        requests: [Counter; RequestOutcome::ALL.len()],
        store_queries: Counter,
        filter_refusals: Counter,
        lookup: Histogram,
        cache_entries: Gauge,
        feed_live: Gauge,
        limits_fallback: Gauge,
    }

    impl Meters {
        pub(crate) fn new() -> Self {
            describe_counter!(
                "apikey_requests_total",
                "Requests verified by apikey, by outcome"
            );
            describe_counter!(
                "apikey_store_queries_total",
                "Key store queries made by verification (cache misses)"
            );
            describe_counter!(
                "apikey_filter_refusals_total",
                "Unknown keys refused by the digest filter without a store query"
            );
            describe_histogram!(
                "apikey_store_lookup_seconds",
                Unit::Seconds,
                "Time of one key store lookup"
            );
            describe_gauge!("apikey_cache_entries", "Verified keys cached");
            describe_gauge!(
                "apikey_feed_live",
                "1 while the store's change feed is live, 0 while caches are bypassed"
            );
            describe_gauge!(
                "apikey_limits_fallback",
                "1 while shared limits are unreachable and hold per instance"
            );
            Meters {
                requests: RequestOutcome::ALL
                    .map(|o| counter!("apikey_requests_total", "outcome" => o.label())),
                store_queries: counter!("apikey_store_queries_total"),
                filter_refusals: counter!("apikey_filter_refusals_total"),
                lookup: histogram!("apikey_store_lookup_seconds"),
                cache_entries: gauge!("apikey_cache_entries"),
                feed_live: gauge!("apikey_feed_live"),
                limits_fallback: gauge!("apikey_limits_fallback"),
            }
        }

        #[inline]
        pub(crate) fn request(&self, outcome: RequestOutcome) {
            self.requests[outcome.index()].increment(1);
        }

        pub(crate) fn store_query(&self, took: Duration) {
            self.store_queries.increment(1);
            self.lookup.record(took.as_secs_f64());
        }

        pub(crate) fn filter_refusal(&self) {
            self.filter_refusals.increment(1);
        }

        pub(crate) fn state(&self, cache_entries: usize, feed_live: bool, fallback: bool) {
            self.cache_entries.set(cache_entries as f64);
            self.feed_live.set(if feed_live { 1.0 } else { 0.0 });
            self.limits_fallback.set(if fallback { 1.0 } else { 0.0 });
        }
    }
}

#[cfg(feature = "metrics")]
pub(crate) use on::Meters;

/// Without the `metrics` feature: nothing to count.
#[cfg(not(feature = "metrics"))]
pub(crate) struct Meters;

#[cfg(not(feature = "metrics"))]
impl Meters {
    pub(crate) fn new() -> Self {
        Meters
    }

    #[inline(always)]
    pub(crate) fn request(&self, _: RequestOutcome) {}

    #[inline(always)]
    pub(crate) fn store_query(&self, _: Duration) {}

    #[inline(always)]
    pub(crate) fn filter_refusal(&self) {}
}

/// How often the gauges are brought up to date.
#[cfg(feature = "metrics")]
pub(crate) const GAUGE_PERIOD: Duration = Duration::from_secs(1);
