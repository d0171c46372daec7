//! What the process knows about its own state, for readiness probes and metrics: whether its
//! RabbitMQ sessions are up and whether it is shutting down. Written by the components that
//! own the connections; read by the ops endpoints.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::readiness::ShuttingDown;

/// Shared, cheap to clone.
#[derive(Clone, Default)]
pub struct Health {
    inner: Arc<HealthFlags>,
}

#[derive(Default)]
struct HealthFlags {
    consumer_connected: AtomicBool,
    relay_connected: AtomicBool,
    shutting_down: ShuttingDown,
    in_flight: AtomicU64,
    handled: AtomicU64,
    /// why each component's last attempt to reach RabbitMQ failed, until one succeeds
    problems: Mutex<HashMap<&'static str, String>>,
}

impl Health {
    pub fn set_consumer_connected(&self, connected: bool) {
        self.inner
            .consumer_connected
            .store(connected, Ordering::Relaxed);
        metrics::gauge!("phaseflow_amqp_connected", "component" => "consumer")
            .set(f64::from(u8::from(connected)));
    }

    pub fn set_relay_connected(&self, connected: bool) {
        self.inner
            .relay_connected
            .store(connected, Ordering::Relaxed);
        metrics::gauge!("phaseflow_amqp_connected", "component" => "relay")
            .set(f64::from(u8::from(connected)));
    }

    /// Records why `component`'s last attempt to open a session failed (`None`: it succeeded).
    pub fn set_problem(&self, component: &'static str, problem: Option<String>) {
        let mut problems = self
            .inner
            .problems
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match problem {
            Some(problem) => problems.insert(component, problem),
            None => problems.remove(component),
        };
    }

    /// Why `component`'s last attempt to open a session failed, if it did.
    pub fn problem(&self, component: &str) -> Option<String> {
        self.inner
            .problems
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(component)
            .cloned()
    }

    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.begin();
    }

    pub fn consumer_connected(&self) -> bool {
        self.inner.consumer_connected.load(Ordering::Relaxed)
    }

    pub fn relay_connected(&self) -> bool {
        self.inner.relay_connected.load(Ordering::Relaxed)
    }

    pub fn shutting_down(&self) -> bool {
        self.inner.shutting_down.has_begun()
    }

    /// Messages taken off the queue and not settled yet.
    pub fn started(&self, messages: u64) {
        self.inner.in_flight.fetch_add(messages, Ordering::Relaxed);
    }

    /// Messages settled (acknowledged, dead-lettered) or abandoned to the broker.
    pub fn finished(&self, messages: u64) {
        self.inner.in_flight.fetch_sub(messages, Ordering::Relaxed);
        self.inner.handled.fetch_add(messages, Ordering::Relaxed);
    }

    pub fn in_flight(&self) -> u64 {
        self.inner.in_flight.load(Ordering::Relaxed)
    }

    /// Messages finished since the process started.
    pub fn handled(&self) -> u64 {
        self.inner.handled.load(Ordering::Relaxed)
    }

    /// Whether this worker takes work: both RabbitMQ sessions up and not shutting down.
    pub fn ready(&self) -> bool {
        self.consumer_connected() && self.relay_connected() && !self.shutting_down()
    }
}
