//! The relay's measurements in the Prometheus text format (OpenMetrics), for `/metrics` on the
//! admin listener: what `RelayMetrics` reports, plus the plans the store holds, read at each
//! scrape. Names and what to alert on: `docs/operations.md`, Monitoring.

use std::time::Duration;

use alliance_core::sync::{RelayMetrics, Traffic};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A label set: `rule="…"`.
type Labels = Vec<(String, String)>;

/// Every series the relay exports, registered under the `alliance_relay` prefix.
pub struct Metrics {
    registry: Registry,
    connections: Counter,
    connections_open: Gauge,
    devices_connected: Gauge,
    plans_held: Gauge,
    frames_received: Counter,
    frames_sent: Counter,
    bytes_received: Counter,
    bytes_sent: Counter,
    refusals: Family<Labels, Counter>,
    sync_round_trip: Histogram,
    store_write: Histogram,
}

/// Latency buckets from 0.5 ms to about 8 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("alliance_relay");
        let metrics = Self {
            connections: Counter::default(),
            connections_open: Gauge::default(),
            devices_connected: Gauge::default(),
            plans_held: Gauge::default(),
            frames_received: Counter::default(),
            frames_sent: Counter::default(),
            bytes_received: Counter::default(),
            bytes_sent: Counter::default(),
            refusals: Family::default(),
            sync_round_trip: latency_histogram(),
            store_write: latency_histogram(),
            registry: Registry::default(),
        };
        let m = &metrics;
        registry.register(
            "connections",
            "TCP connections accepted",
            m.connections.clone(),
        );
        registry.register(
            "connections_open",
            "Connections open now",
            m.connections_open.clone(),
        );
        registry.register(
            "devices_connected",
            "Devices joined (past authentication) and connected now",
            m.devices_connected.clone(),
        );
        registry.register(
            "plans_held",
            "Plans in the relay's store",
            m.plans_held.clone(),
        );
        registry.register(
            "frames_received",
            "Protocol frames received",
            m.frames_received.clone(),
        );
        registry.register("frames_sent", "Protocol frames sent", m.frames_sent.clone());
        registry.register(
            "bytes_received",
            "Protocol bytes received",
            m.bytes_received.clone(),
        );
        registry.register("bytes_sent", "Protocol bytes sent", m.bytes_sent.clone());
        registry.register(
            "refusals",
            "Connections closed for breaking a rule, and changes the role rules refused, by rule",
            m.refusals.clone(),
        );
        registry.register(
            "sync_round_trip_seconds",
            "From a device's sync message arriving to the relay's reply being sent",
            m.sync_round_trip.clone(),
        );
        registry.register(
            "store_write_seconds",
            "Applying one received sync message to the store (one transaction)",
            m.store_write.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// The text of a scrape, with `plans_held` set first.
    pub fn render(&self, plans_held: Option<usize>) -> String {
        if let Some(plans) = plans_held {
            self.plans_held.set(plans as i64);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl RelayMetrics for Metrics {
    fn connection_opened(&self) {
        self.connections.inc();
        self.connections_open.inc();
    }

    fn connection_closed(&self) {
        self.connections_open.dec();
    }

    fn device_joined(&self) {
        self.devices_connected.inc();
    }

    fn device_left(&self) {
        self.devices_connected.dec();
    }

    fn traffic(&self, delta: &Traffic) {
        self.frames_received.inc_by(delta.frames_received);
        self.frames_sent.inc_by(delta.frames_sent);
        self.bytes_received.inc_by(delta.bytes_received);
        self.bytes_sent.inc_by(delta.bytes_sent);
    }

    fn refused(&self, rule: &str) {
        self.refusals
            .get_or_create(&vec![("rule".to_string(), rule.to_string())])
            .inc();
    }

    fn sync_round_trip(&self, elapsed: Duration) {
        self.sync_round_trip.observe(elapsed.as_secs_f64());
    }

    fn store_write(&self, elapsed: Duration) {
        self.store_write.observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_names_every_series_with_its_value() {
        let metrics = Metrics::new();
        metrics.connection_opened();
        metrics.traffic(&Traffic {
            frames_sent: 2,
            frames_received: 3,
            bytes_sent: 40,
            bytes_received: 50,
        });
        metrics.refused("unauthorized");
        metrics.store_write(Duration::from_millis(3));
        let text = metrics.render(Some(7));
        for line in [
            "alliance_relay_connections_total 1",
            "alliance_relay_connections_open 1",
            "alliance_relay_plans_held 7",
            "alliance_relay_frames_received_total 3",
            "alliance_relay_bytes_sent_total 40",
            "alliance_relay_refusals_total{rule=\"unauthorized\"} 1",
            "alliance_relay_store_write_seconds_count 1",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
    }
}
