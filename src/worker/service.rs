//! The worker's parts as services, and the one sequence that starts and stops them: each
//! [`Service`] runs as one task on a shared [`TaskTracker`], from its start until its own stop
//! token is cancelled. [`Services`] starts them in the order they are given and stops them in
//! the reverse order, each finished before the next is told to stop, so a part is stopped only
//! once everything started after it (everything that may lean on it) has ended.
//!
//! Nothing here knows what the services do, nor what a stop must let them finish: that is each
//! service's own business (see `worker` for the order and why).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use anyhow::anyhow;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A part of the worker: runs from `start` until `stop` is cancelled, then finishes what it
/// must and ends.
pub trait Service: Send + 'static {
    /// Its name in logs, and in the error of a service that ended on its own.
    fn name(&self) -> &'static str;

    /// The service's task: it runs until `stop` is cancelled. An error, or an end before
    /// `stop`, makes the worker stop.
    fn start(
        self,
        stop: CancellationToken,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'static;
}

/// A started service.
struct Running {
    name: &'static str,
    stop: CancellationToken,
    /// taken once the task ended
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// The services started so far, in their order, on one tracker.
#[derive(Default)]
pub struct Services {
    tracker: TaskTracker,
    running: Vec<Running>,
}

impl Services {
    pub fn new() -> Self {
        Services::default()
    }

    /// Starts `service` after those started before it.
    pub fn start(&mut self, service: impl Service) {
        let name = service.name();
        let stop = CancellationToken::new();
        let task = self.tracker.spawn(service.start(stop.clone()));
        tracing::debug!(service = name, "started");
        self.running.push(Running {
            name,
            stop,
            task: Some(task),
        });
    }

    /// The names of the services started so far, in their order.
    pub fn names(&self) -> Vec<&'static str> {
        self.running.iter().map(|service| service.name).collect()
    }

    /// Resolves when a service ends while nothing asked it to stop: with its error, or an error
    /// saying that it stopped. Pending for ever while every service runs.
    pub async fn ended(&mut self) -> anyhow::Error {
        std::future::poll_fn(|context| {
            for service in &mut self.running {
                let Some(task) = service.task.as_mut() else {
                    continue;
                };
                if let Poll::Ready(result) = Pin::new(task).poll(context) {
                    service.task = None;
                    return Poll::Ready(match result {
                        Ok(Ok(())) => anyhow!("the {} stopped on its own", service.name),
                        Ok(Err(error)) => error.context(format!("the {} failed", service.name)),
                        Err(error) => anyhow!("the {} panicked: {error}", service.name),
                    });
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Stops the services in the reverse order of their start, each one ended before the next
    /// is told to stop, then waits for the tracker to be empty.
    pub async fn stop(mut self) {
        while let Some(service) = self.running.pop() {
            service.stop.cancel();
            if let Some(task) = service.task {
                tracing::debug!(service = service.name, "stopping");
                match task.await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::warn!(
                        service = service.name,
                        error = format!("{error:#}"),
                        "a service failed as it stopped"
                    ),
                    Err(error) => {
                        tracing::error!(service = service.name, %error, "a service panicked")
                    }
                }
                tracing::debug!(service = service.name, "stopped");
            }
        }
        self.tracker.close();
        self.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    /// A service that writes when it starts and when it ends into a shared log; a stop takes
    /// `finishing` to complete.
    struct Recorder {
        name: &'static str,
        log: Arc<Mutex<Vec<String>>>,
        finishing: Duration,
    }

    impl Service for Recorder {
        fn name(&self) -> &'static str {
            self.name
        }

        async fn start(self, stop: CancellationToken) -> anyhow::Result<()> {
            self.log
                .lock()
                .unwrap()
                .push(format!("{} started", self.name));
            stop.cancelled().await;
            tokio::time::sleep(self.finishing).await;
            self.log
                .lock()
                .unwrap()
                .push(format!("{} ended", self.name));
            Ok(())
        }
    }

    #[tokio::test]
    async fn services_end_in_the_reverse_order_of_their_start_each_before_the_next_stops() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut services = Services::new();
        // the first takes longest to finish: a stop that did not wait would log it out of order
        for (name, millis) in [("first", 30), ("second", 10), ("third", 0)] {
            services.start(Recorder {
                name,
                log: log.clone(),
                finishing: Duration::from_millis(millis),
            });
            tokio::task::yield_now().await;
        }
        assert_eq!(services.names(), ["first", "second", "third"]);
        services.stop().await;
        assert_eq!(
            *log.lock().unwrap(),
            [
                "first started",
                "second started",
                "third started",
                "third ended",
                "second ended",
                "first ended",
            ]
        );
    }

    struct Failing;

    impl Service for Failing {
        fn name(&self) -> &'static str {
            "failing service"
        }

        async fn start(self, _stop: CancellationToken) -> anyhow::Result<()> {
            Err(anyhow!("cannot bind"))
        }
    }

    #[tokio::test]
    async fn a_service_that_fails_on_its_own_is_reported_with_its_name_and_error() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut services = Services::new();
        services.start(Recorder {
            name: "recorder",
            log: log.clone(),
            finishing: Duration::ZERO,
        });
        services.start(Failing);
        let error = tokio::time::timeout(Duration::from_secs(5), services.ended())
            .await
            .expect("the failure is reported");
        assert_eq!(
            format!("{error:#}"),
            "the failing service failed: cannot bind"
        );
        // the others still run until stopped
        assert_eq!(*log.lock().unwrap(), ["recorder started"]);
        services.stop().await;
        assert_eq!(*log.lock().unwrap(), ["recorder started", "recorder ended"]);
    }
}
