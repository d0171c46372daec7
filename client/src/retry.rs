//! How phaseflow waits for Postgres and RabbitMQ to come back: the backoff of every retry loop,
//! and the log lines of an outage. No SQL and no AMQP here: callers say what failed.
//!
//! **Backoff.** Delays grow exponentially from a minimum towards a maximum, and each has a
//! random part, so that replicas which lost a server at the same moment try again at different
//! moments and do not all land on it at once when it returns. The random part comes from
//! backon's jitter, whose generator is seeded per process and per backoff (its `std` feature;
//! without it every process draws the same delays). backon adds that part on top of a delay
//! already capped at its maximum, so [`Backoff`] gives backon half the maximum as its cap and
//! clamps the sum: no delay exceeds the configured maximum, random part included, and once the
//! growth reached it the delays are spread between half the maximum and the maximum. The
//! maximum is therefore also the longest a loop can oversleep a server's return.
//!
//! **Outage logs.** [`OutageLog`] is shared by the loops that retry against one server: the first
//! failure of an outage is a single WARN, every retry after it is DEBUG, and the first success
//! afterwards is an INFO saying how long it lasted. A warning is then something to look at,
//! not one line per retry of something that heals itself.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Exponential backoff with random jitter, every delay within `[min, max]`. A
/// [`backon::BackoffBuilder`], so it serves both `Retryable::retry` and hand-written loops
/// (`.build()` gives the delays).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    max_times: Option<usize>,
}

impl Backoff {
    /// Delays from `min` up to `max`, without end. A `min` above `max` is lowered to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min: min.min(max),
            max,
            max_times: None,
        }
    }

    /// Gives up (the delays end) after `times` retries.
    pub fn with_max_times(mut self, times: usize) -> Self {
        self.max_times = Some(times);
        self
    }

    /// The longest delay it yields.
    pub fn max_delay(&self) -> Duration {
        self.max
    }
}

impl BackoffBuilder for Backoff {
    type Backoff = Delays;

    fn build(self) -> Delays {
        // backon yields `d + jitter` with `jitter` in [0, d) and `d` capped at its maximum:
        // capping `d` at half of ours keeps the sum within it (the clamp below only catches
        // rounding, or a minimum above half the maximum)
        let growth_cap = (self.max / 2).max(self.min);
        let builder = ExponentialBuilder::default()
            .with_min_delay(self.min)
            .with_max_delay(growth_cap)
            .with_jitter();
        let builder = match self.max_times {
            Some(times) => builder.with_max_times(times),
            None => builder.without_max_times(),
        };
        Delays {
            delays: builder.build(),
            max: self.max,
        }
    }
}

/// The delays of one [`Backoff`], in order.
#[derive(Debug)]
pub struct Delays {
    delays: ExponentialBackoff,
    max: Duration,
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.delays.next().map(|delay| delay.min(self.max))
    }
}

/// The outages of one server (Postgres or RabbitMQ) as the retry loops of this process meet
/// them. Clones share the state: whichever loop fails first logs the WARN, whichever succeeds
/// first afterwards logs the INFO.
#[derive(Clone)]
pub struct OutageLog {
    server: &'static str,
    state: Arc<OutageState>,
}

struct OutageState {
    /// mirrors `outage.is_some()`, so the success path of every attempt costs one atomic load
    down: AtomicBool,
    history: Mutex<History>,
}

#[derive(Default)]
struct History {
    /// the outage under way
    outage: Option<Outage>,
    /// when the last one ended
    ended_at: Option<Instant>,
}

struct Outage {
    since: Instant,
    failures: u64,
}

impl OutageLog {
    /// `server` names it in the log lines: `Postgres`, `RabbitMQ`.
    pub fn new(server: &'static str) -> Self {
        OutageLog {
            server,
            state: Arc::new(OutageState {
                down: AtomicBool::new(false),
                history: Mutex::default(),
            }),
        }
    }

    /// An attempt of `component`, begun at `started`, failed for a reason that is retried, next
    /// in `retry_in`. Logs a WARN when this begins an outage, a DEBUG when one is already under
    /// way, or when the attempt began before the last outage ended (a connection it waited for
    /// since then, say): that failure is a straggler of the outage that ended, not a new one.
    pub fn failed(
        &self,
        component: &'static str,
        started: Instant,
        error: &dyn Display,
        retry_in: Duration,
    ) {
        let began = {
            let mut history = self.lock();
            let straggler = history.ended_at.is_some_and(|ended| started < ended);
            match history.outage.as_mut() {
                Some(outage) => {
                    outage.failures += 1;
                    false
                }
                None if straggler => false,
                None => {
                    history.outage = Some(Outage {
                        since: Instant::now(),
                        failures: 1,
                    });
                    self.state.down.store(true, Ordering::Release);
                    true
                }
            }
        };
        let retry_in_ms = retry_in.as_millis() as u64;
        if began {
            tracing::warn!(
                server = self.server,
                component,
                error = %error,
                retry_in_ms,
                "{} unavailable; retrying until it is back (retries are logged at debug)",
                self.server
            );
        } else {
            tracing::debug!(
                server = self.server,
                component,
                error = %error,
                retry_in_ms,
                "{} still unavailable; retrying",
                self.server
            );
        }
    }

    /// An attempt of `component` succeeded: logs an INFO when this ends an outage.
    pub fn succeeded(&self, component: &'static str) {
        if !self.state.down.load(Ordering::Acquire) {
            return;
        }
        let ended = {
            let mut history = self.lock();
            self.state.down.store(false, Ordering::Release);
            let ended = history.outage.take();
            if ended.is_some() {
                history.ended_at = Some(Instant::now());
            }
            ended
        };
        if let Some(outage) = ended {
            tracing::info!(
                server = self.server,
                component,
                down_ms = outage.since.elapsed().as_millis() as u64,
                failed_attempts = outage.failures,
                "{} available again",
                self.server
            );
        }
    }

    /// Whether an outage is under way (a failure not yet followed by a success).
    pub fn is_down(&self) -> bool {
        self.state.down.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, History> {
        // the state is plain values: a panic while holding the lock cannot break it
        self.state
            .history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_delay_exceeds_the_maximum_jitter_included() {
        for (min, max) in [
            (200, 2_000),
            (50, 2_000),
            (100, 3_000),
            (1_500, 2_000),
            (10, 11),
        ] {
            let backoff = Backoff::new(Duration::from_millis(min), Duration::from_millis(max));
            for _ in 0..200 {
                for delay in backoff.build().take(40) {
                    assert!(
                        delay <= Duration::from_millis(max),
                        "{delay:?} above the maximum {max} ms (min {min} ms)"
                    );
                    assert!(
                        delay >= Duration::from_millis(min),
                        "{delay:?} below the minimum {min} ms"
                    );
                }
            }
        }
    }

    #[test]
    fn delays_grow_towards_the_maximum_and_then_spread_below_it() {
        let max = Duration::from_millis(2_000);
        let backoff = Backoff::new(Duration::from_millis(100), max);
        let plateau: Vec<Duration> = (0..100)
            .flat_map(|_| backoff.build().skip(10).take(5).collect::<Vec<_>>())
            .collect();
        assert!(plateau
            .iter()
            .all(|delay| *delay >= max / 2 && *delay <= max));
        let shortest = plateau.iter().min().copied().unwrap_or_default();
        let longest = plateau.iter().max().copied().unwrap_or_default();
        assert!(
            longest - shortest > max / 4,
            "the delays at the cap are spread, not all equal: {shortest:?}..{longest:?}"
        );
    }

    #[test]
    fn two_backoffs_built_alike_draw_different_delays() {
        let backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
        let first: Vec<Duration> = backoff.build().take(8).collect();
        let second: Vec<Duration> = backoff.build().take(8).collect();
        assert_ne!(first, second, "the jitter is seeded per backoff");
    }

    /// Run by [`two_processes_draw_different_delays`] in child processes: prints the delays.
    #[test]
    #[ignore = "a helper the test below runs in child processes"]
    fn print_the_first_delays() {
        let backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
        let delays: Vec<u128> = backoff.build().take(8).map(|d| d.as_micros()).collect();
        println!("delays: {delays:?}");
    }

    #[test]
    fn two_processes_draw_different_delays() {
        let run = || {
            let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
                .args([
                    "--ignored",
                    "--exact",
                    "retry::tests::print_the_first_delays",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .output()
                .expect("the test binary runs again");
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .find_map(|line| line.find("delays: ").map(|at| line[at..].to_owned()))
                .expect("the child printed its delays")
        };
        let (first, second) = (run(), run());
        assert_ne!(first, second, "each process seeds its own jitter");
    }

    #[test]
    fn a_limited_backoff_ends() {
        let backoff =
            Backoff::new(Duration::from_millis(1), Duration::from_millis(5)).with_max_times(3);
        assert_eq!(backoff.build().count(), 3);
    }

    #[test]
    fn an_outage_is_down_from_the_first_failure_to_the_next_success() {
        let log = OutageLog::new("Postgres");
        let shared = log.clone();
        let refused = "connection refused";
        assert!(!log.is_down());
        log.succeeded("test");
        log.failed("test", Instant::now(), &refused, Duration::from_millis(10));
        assert!(shared.is_down(), "clones share the state");
        shared.failed("other", Instant::now(), &refused, Duration::from_millis(10));
        shared.succeeded("other");
        assert!(!log.is_down());
    }

    #[test]
    fn an_attempt_begun_during_the_last_outage_does_not_begin_another() {
        let log = OutageLog::new("Postgres");
        let refused = "connection refused";
        let before = Instant::now();
        log.failed("test", before, &refused, Duration::ZERO);
        log.succeeded("test");
        log.failed("test", before, &"pool timed out", Duration::ZERO);
        assert!(!log.is_down(), "a straggler of the outage that ended");
        log.failed("test", Instant::now(), &refused, Duration::ZERO);
        assert!(log.is_down(), "an attempt begun after it ended fails anew");
    }
}
