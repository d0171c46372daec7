//! The reconnect loop of the worker's RabbitMQ sessions, the consumer's and the relay's: open a
//! session, run it until it ends, and open another when it is lost, waiting per
//! `amqp.reconnect_*` after every attempt that fails.
//!
//! The loop keeps the books of a connection: the backoff and the outage log of the attempts,
//! the component's health flag while a session is up, the reconnect counter, and closing the
//! connection. What a session does (consuming, publishing) and why it ended belong to its
//! owner, which also logs a lost session's reason: nothing here touches a message or decides
//! when to stop. Only the tokens it is given end the loop between sessions, and only the
//! session's owner ends it while a session runs.

use std::future::Future;
use std::time::Instant;

use backon::BackoffBuilder;
use lapin::Connection;
use tokio_util::sync::CancellationToken;

use crate::retry::{Backoff, OutageLog};
use crate::worker::health::Health;

/// How a session ended.
pub(super) enum SessionEnd {
    /// done for good (shut down, drained or abandoned): no session follows
    Stop,
    /// lost (the broker went away, the channel closed, the consumer was cancelled): the owner
    /// logged why, and a new session is opened at once
    Lost,
}

/// A component that works through RabbitMQ sessions: it opens them and runs each until it
/// ends. Their futures are `Send`, so that the loop over them runs in a spawned task.
pub(super) trait Sessions {
    /// what a session works with besides its connection: channels, a consumer
    type Session: Send;

    /// Opens a connection and what the session needs on it.
    fn open(&mut self) -> impl Future<Output = anyhow::Result<(Connection, Self::Session)>> + Send;

    /// Works through a session until it stops or is lost; logs why when it is lost.
    fn run(&mut self, session: &mut Self::Session) -> impl Future<Output = SessionEnd> + Send;
}

/// How one component keeps a session up.
pub(super) struct Reconnect<'a> {
    /// the `component` of the log lines and of `phaseflow_amqp_reconnects_total`
    pub component: &'static str,
    /// the delays between attempts to open a session that fail
    pub backoff: Backoff,
    /// the RabbitMQ outage log the attempts report to
    pub outages: &'a OutageLog,
    /// ends the loop while it opens a session or waits to try again
    pub stop: &'a CancellationToken,
    /// for a component that goes on after a stop while it has a session (the relay drains the
    /// outbox): once cancelled, an attempt to open a session that fails ends the loop, and the
    /// wait before the next attempt is cut short. Without a session there is nothing of its
    /// own to finish, so a process that cannot reach the broker stops at once.
    pub give_up: Option<&'a CancellationToken>,
    pub health: &'a Health,
    /// sets the component's flag in `health`: up while a session runs
    pub set_connected: fn(&Health, bool),
    /// the close code and reason of the connection of a session that stopped
    pub close_stopped: (u16, &'static str),
    /// the close code and reason of the connection of a session that was lost
    pub close_lost: (u16, &'static str),
}

impl Reconnect<'_> {
    /// Opens sessions of `owner` and runs each, until a session ends with [`SessionEnd::Stop`]
    /// or `stop` is cancelled between sessions. A session's state (its channels, its consumer)
    /// lives until its connection is closed.
    pub(super) async fn run(self, owner: &mut impl Sessions) {
        let mut delays = self.backoff.build();
        loop {
            if self.stop.is_cancelled() {
                break;
            }
            let attempt = Instant::now();
            let opened = tokio::select! {
                opened = owner.open() => opened,
                () = self.stop.cancelled() => break,
            };
            let (connection, mut state) = match opened {
                Ok(opened) => {
                    delays = self.backoff.build();
                    self.outages.succeeded(self.component);
                    self.health.set_problem(self.component, None);
                    opened
                }
                Err(error) => {
                    let delay = delays.next().unwrap_or(self.backoff.max_delay());
                    self.outages
                        .failed(self.component, attempt, &format_args!("{error:#}"), delay);
                    self.health
                        .set_problem(self.component, Some(format!("{error:#}")));
                    if self.give_up.is_some_and(CancellationToken::is_cancelled) {
                        break;
                    }
                    let give_up = async {
                        match self.give_up {
                            Some(token) => token.cancelled().await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        () = tokio::time::sleep(delay) => continue,
                        // one more attempt, at once: a session may still finish the work
                        () = give_up => continue,
                        () = self.stop.cancelled() => break,
                    }
                }
            };
            (self.set_connected)(self.health, true);
            let end = owner.run(&mut state).await;
            (self.set_connected)(self.health, false);
            let (code, reason) = match end {
                SessionEnd::Stop => self.close_stopped,
                SessionEnd::Lost => {
                    metrics::counter!("phaseflow_amqp_reconnects_total", "component" => self.component)
                        .increment(1);
                    self.close_lost
                }
            };
            let _ = connection.close(code, reason.into()).await;
            drop(state);
            if matches!(end, SessionEnd::Stop) {
                break;
            }
        }
    }
}
