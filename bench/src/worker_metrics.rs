//! The worker's own view of a stage, from two scrapes of its Prometheus `/metrics` (before and
//! after): handler time, events published, relay rounds and how long events waited in the
//! outbox. A scrape that fails leaves the figures out; it never fails the run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::report::{round, HandlerReport, RelayReport, WorkerMetricsReport};

/// The worker's metrics at one moment, by series (name and labels as rendered).
pub struct Scrape(HashMap<String, f64>);

impl Scrape {
    /// Reads `/metrics` on the worker's ops port.
    pub async fn take(addr: SocketAddr) -> Option<Scrape> {
        let text = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut stream =
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            // HTTP/1.0: the body is not chunked and ends when the connection closes
            stream
                .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                .ok()?;
            let mut response = String::new();
            stream.read_to_string(&mut response).ok()?;
            Some(response)
        })
        .await
        .ok()??;
        let (_, body) = text.split_once("\r\n\r\n")?;
        Some(Scrape::parse(body))
    }

    fn parse(body: &str) -> Scrape {
        let series = body
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse::<f64>().ok()?))
            })
            .collect();
        Scrape(series)
    }

    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }
}

/// What happened between two scrapes.
pub struct Interval<'a> {
    before: &'a Scrape,
    after: &'a Scrape,
}

impl<'a> Interval<'a> {
    /// `None` unless both scrapes were read.
    pub fn between(before: Option<&'a Scrape>, after: Option<&'a Scrape>) -> Option<Self> {
        Some(Interval {
            before: before?,
            after: after?,
        })
    }

    fn delta(&self, series: &str) -> f64 {
        self.after.get(series) - self.before.get(series)
    }

    /// Mean handler time of the requests queue and messages per transition.
    pub fn worker_metrics(&self, transitions: u64) -> WorkerMetricsReport {
        let queue = "requests";
        let count = self.delta(&format!(
            "phaseflow_handler_duration_seconds_count{{queue=\"{queue}\"}}"
        ));
        let sum = self.delta(&format!(
            "phaseflow_handler_duration_seconds_sum{{queue=\"{queue}\"}}"
        ));
        WorkerMetricsReport {
            requests_handler: HandlerReport {
                messages: count,
                messages_per_transition: if transitions > 0 {
                    round(count / transitions as f64, 3)
                } else {
                    0.0
                },
                mean_ms: if count > 0.0 {
                    round(sum / count * 1000.0, 3)
                } else {
                    0.0
                },
            },
            events_published: self.delta("phaseflow_outbox_published_total"),
            transaction_retries: self.delta("phaseflow_transaction_retries_total"),
            note: "handler time runs from delivery to settlement (transaction, commit and ack)",
        }
    }

    /// The relay's rounds: how many, how many events each published, and how long events
    /// waited in the outbox (from the start of the transaction that wrote them to the broker's
    /// confirm).
    pub fn relay(&self, transitions: u64) -> RelayReport {
        let rounds = self.delta("phaseflow_outbox_rounds_total");
        let events = self.delta("phaseflow_outbox_published_total");
        let waits = self.delta("phaseflow_outbox_publish_lag_seconds_count");
        let waited = self.delta("phaseflow_outbox_publish_lag_seconds_sum");
        RelayReport {
            rounds,
            events,
            events_per_round: if rounds > 0.0 {
                round(events / rounds, 2)
            } else {
                0.0
            },
            rounds_per_transition: if transitions > 0 {
                round(rounds / transitions as f64, 3)
            } else {
                0.0
            },
            outbox_wait_mean_ms: if waits > 0.0 {
                round(waited / waits * 1000.0, 2)
            } else {
                0.0
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Interval, Scrape};

    #[test]
    fn an_interval_is_the_difference_of_two_scrapes() {
        let before = Scrape::parse(
            "# TYPE phaseflow_outbox_rounds_total counter\n\
             phaseflow_outbox_rounds_total 10\n\
             phaseflow_outbox_published_total 30\n",
        );
        let after = Scrape::parse(
            "phaseflow_outbox_rounds_total 20\n\
             phaseflow_outbox_published_total 70\n\
             phaseflow_handler_duration_seconds_count{queue=\"requests\"} 8\n\
             phaseflow_handler_duration_seconds_sum{queue=\"requests\"} 0.04\n",
        );
        let interval = Interval::between(Some(&before), Some(&after)).expect("both scrapes");
        let relay = interval.relay(20);
        assert_eq!((relay.rounds, relay.events), (10.0, 40.0));
        assert_eq!(relay.events_per_round, 4.0);
        assert_eq!(relay.rounds_per_transition, 0.5);
        let metrics = interval.worker_metrics(4);
        assert_eq!(metrics.requests_handler.messages_per_transition, 2.0);
        assert_eq!(metrics.requests_handler.mean_ms, 5.0);
        assert!(Interval::between(None, Some(&after)).is_none());
    }
}
