//! The review agent's loop: a durable subscription to `gate.review.requested`, one verdict per
//! event published with `gate.review.submit.requested` and its outcome logged, and a new
//! session, after a backoff, whenever RabbitMQ fails.
//!
//! An event is acknowledged once its verdict was published and its outcome came back (or did
//! not within `review_agent.outcome_timeout_ms`: the verdict is queued for the worker by then).
//! The verdict's request id is derived from the event's id, so a verdict published again for a
//! redelivered event is applied at most once by the worker.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use backon::BackoffBuilder;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use phaseflow_client::broker::{
    Broker, EventDelivery, EventSubscription, NoOutcome, OutgoingRequest, RequestClient,
};
use phaseflow_client::events::GateReviewed;
use phaseflow_client::retry::{Backoff, OutageLog};
use phaseflow_client::{event_type, RejectionCode, RejectionData, RequestType};

use super::judge::{Judgement, Memory, ReviewRequested, RuleSet};
use super::settings::ReviewAgentSettings;

/// The event the agent answers.
pub const REVIEW_REQUESTED: &str = event_type::GATE_REVIEW_REQUESTED;
/// The request that carries its verdict.
pub const REVIEW_SUBMIT_REQUESTED: &str = RequestType::ReviewGate.as_str();
/// The rejection of its verdict.
const REVIEW_SUBMIT_REJECTED: Option<&str> = RequestType::ReviewGate.rejection_type();

/// The `component` of its log lines.
const COMPONENT: &str = "review agent";

/// The longest agent id: it goes into the verdict's request id, which may have 128 characters.
const MAX_AGENT_ID_CHARS: usize = 64;

/// Runs the review agent on `broker` until `stop` is cancelled, reconnecting after `backoff`'s
/// delays. Fails at once when its settings or rules are unusable; RabbitMQ being unreachable is
/// waited out.
pub async fn run(
    broker: Broker,
    backoff: Backoff,
    settings: ReviewAgentSettings,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let rules = check_settings(&settings)?;
    let config = &settings;
    tracing::info!(
        agent_id = config.agent_id,
        queue = config.queue,
        rules = rules.len(),
        "review agent started"
    );
    let mut agent = Agent {
        settings: &settings,
        rules,
        memory: Memory::default(),
        reviewed: 0,
    };
    let outages = OutageLog::new("RabbitMQ");
    let mut delays = backoff.build();
    loop {
        let attempt = Instant::now();
        let opened = tokio::select! {
            opened = Session::open(&broker, &settings.queue) => opened,
            () = stop.cancelled() => break,
        };
        let delay = match opened {
            Ok(mut session) => {
                outages.succeeded(COMPONENT);
                let reviewed = agent.reviewed;
                let lost = tokio::select! {
                    lost = agent.serve(&mut session) => Some(lost),
                    () = stop.cancelled() => None,
                };
                // an event under review when the session ends is not acknowledged: closing
                // the connection gives it back to the queue
                session.close().await;
                let Some(error) = lost else { break };
                if agent.reviewed > reviewed {
                    delays = backoff.build();
                }
                let delay = delays.next().unwrap_or(backoff.max_delay());
                tracing::warn!(
                    component = COMPONENT,
                    error = format!("{error:#}"),
                    retry_in_ms = delay.as_millis() as u64,
                    "the review agent's RabbitMQ session ended; an event under review is \
                     delivered again"
                );
                delay
            }
            Err(error) => {
                let delay = delays.next().unwrap_or(backoff.max_delay());
                outages.failed(COMPONENT, attempt, &format_args!("{error:#}"), delay);
                delay
            }
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => break,
        }
    }
    tracing::info!(reviewed = agent.reviewed, "review agent stopped");
    Ok(())
}

/// Checks the agent's settings, and its rules, which it returns. Errors name the setting, or the
/// rule by its position.
pub fn check_settings(settings: &ReviewAgentSettings) -> anyhow::Result<RuleSet> {
    let agent_id = &settings.agent_id;
    if agent_id.trim().is_empty()
        || agent_id.chars().count() > MAX_AGENT_ID_CHARS
        || agent_id.chars().any(char::is_whitespace)
    {
        bail!(
            "review_agent.agent_id must be 1 to {MAX_AGENT_ID_CHARS} characters without spaces \
             (found {agent_id:?})"
        );
    }
    if settings.queue.is_empty() || settings.queue.len() > 255 {
        bail!(
            "review_agent.queue must be 1 to 255 bytes long (AMQP allows no more); it is {}",
            settings.queue.len()
        );
    }
    if settings.outcome_timeout_ms == 0 {
        bail!("review_agent.outcome_timeout_ms must be at least 1");
    }
    RuleSet::from_settings(&settings.rules)
}

/// What to do with one event.
#[derive(Debug)]
pub enum Prepared {
    /// judge it and send the verdict
    Review {
        event_id: String,
        correlation_id: Option<String>,
        review: Box<ReviewRequested>,
    },
    /// acknowledge it without a verdict, for this reason
    Skip { reason: String, unexpected: bool },
}

/// Reads an event: a review request this agent may answer, or one to skip. An event that is
/// not a review request, or whose `data` cannot be read, is `unexpected`; a phase the agent
/// authored is skipped, since the worker would refuse its review.
pub fn prepare(event: &Value, agent_id: &str) -> Prepared {
    let unexpected = |reason: String| Prepared::Skip {
        reason,
        unexpected: true,
    };
    if event["type"] != REVIEW_REQUESTED {
        return unexpected(format!(
            "an event of type {} is not a review request",
            event["type"]
        ));
    }
    let Some(event_id) = event["id"].as_str().filter(|id| !id.is_empty()) else {
        return unexpected("a review request without an id".to_owned());
    };
    let review: ReviewRequested = match serde_json::from_value(event["data"].clone()) {
        Ok(review) => review,
        Err(error) => return unexpected(format!("its data cannot be read: {error}")),
    };
    if review.authors.iter().any(|author| author == agent_id) {
        return Prepared::Skip {
            reason: format!(
                "{agent_id} completed a task of {} itself: an author may not review it",
                review.phase_id
            ),
            unexpected: false,
        };
    }
    Prepared::Review {
        event_id: event_id.to_owned(),
        correlation_id: event["correlationid"].as_str().map(str::to_owned),
        review: Box::new(review),
    }
}

/// The verdict's request id: the same for every delivery of one event, so the worker applies a
/// verdict sent again at most once. An event id too long to fit gets a new UUID instead.
pub fn request_id(agent_id: &str, event_id: &str) -> String {
    let id = format!("review:{agent_id}:{event_id}");
    if id.chars().count() <= 128 {
        id
    } else {
        Uuid::new_v4().to_string()
    }
}

/// The `gate.review.submit.requested` request carrying a judgement: `subject` the ticket,
/// `actor` the agent, the review request's `correlationid` carried on.
pub fn verdict_request(
    agent_id: &str,
    event_id: &str,
    correlation_id: Option<&str>,
    review: &ReviewRequested,
    judgement: &Judgement,
) -> OutgoingRequest {
    OutgoingRequest {
        id: request_id(agent_id, event_id),
        request_type: REVIEW_SUBMIT_REQUESTED.to_owned(),
        subject: Some(review.ticket_id.to_string()),
        source: format!("agent/{agent_id}"),
        actor: Some(agent_id.to_owned()),
        correlation_id: correlation_id.map(str::to_owned),
        data: json!({
            "phase_id": review.phase_id,
            "verdict": judgement.verdict,
            "reasons": judgement.reasons,
        }),
    }
}

struct Agent<'a> {
    settings: &'a ReviewAgentSettings,
    rules: RuleSet,
    memory: Memory,
    /// events handled and acknowledged since the start
    reviewed: u64,
}

/// A connection for the verdicts and one for the review requests.
struct Session {
    client: RequestClient,
    events: EventSubscription,
}

impl Session {
    async fn open(broker: &Broker, queue: &str) -> anyhow::Result<Session> {
        let client = RequestClient::connect(broker, "phaseflow review-agent").await?;
        let events = match EventSubscription::durable(broker, queue, REVIEW_REQUESTED).await {
            Ok(events) => events,
            Err(error) => {
                client.close().await;
                return Err(error);
            }
        };
        Ok(Session { client, events })
    }

    async fn close(self) {
        self.events.close().await;
        self.client.close().await;
    }
}

impl Agent<'_> {
    /// Handles events until the session fails; returns why.
    async fn serve(&mut self, session: &mut Session) -> anyhow::Error {
        loop {
            let delivery = match session.events.next_delivery().await {
                None => return anyhow!("the subscription to review requests ended"),
                Some(Err(error)) => return error,
                Some(Ok(delivery)) => delivery,
            };
            if let Err(error) = self.handle(&session.client, &delivery).await {
                return error;
            }
            if let Err(error) = delivery.ack().await {
                return error;
            }
            self.reviewed += 1;
        }
    }

    /// Judges one event and publishes its verdict. An error is a failure of RabbitMQ: the event
    /// is then left unacknowledged, to be delivered again.
    async fn handle(
        &mut self,
        client: &RequestClient,
        delivery: &EventDelivery,
    ) -> anyhow::Result<()> {
        let config = self.settings;
        let event = match delivery.event() {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "skipped an event that is not JSON"
                );
                return Ok(());
            }
        };
        let (event_id, correlation_id, review) = match prepare(&event, &config.agent_id) {
            Prepared::Review {
                event_id,
                correlation_id,
                review,
            } => (event_id, correlation_id, review),
            Prepared::Skip { reason, unexpected } => {
                if unexpected {
                    tracing::warn!(event_id = %event["id"], reason, "skipped an event");
                } else {
                    tracing::info!(event_id = %event["id"], ticket_id = %event["subject"], reason, "skipped a review request");
                }
                return Ok(());
            }
        };
        let judgement = self.rules.judge(&review, &self.memory);
        let request = verdict_request(
            &config.agent_id,
            &event_id,
            correlation_id.as_deref(),
            &review,
            &judgement,
        );
        tracing::info!(
            ticket_id = %review.ticket_id,
            phase_id = review.phase_id,
            verdict = judgement.verdict.as_str(),
            reasons = ?judgement.reasons,
            redelivered = delivery.redelivered(),
            "judged a review request"
        );
        match client
            .publish_and_wait(&request, Duration::from_millis(config.outcome_timeout_ms))
            .await
        {
            Ok(outcome) => log_outcome(&outcome, &review),
            Err(error) if error.downcast_ref::<NoOutcome>().is_some() => tracing::warn!(
                ticket_id = %review.ticket_id,
                phase_id = review.phase_id,
                request_id = request.id,
                error = %error,
                "the verdict is published but its outcome did not come back; going on"
            ),
            Err(error) => return Err(error.context("cannot publish the verdict")),
        }
        self.memory.record(&judgement.observations);
        Ok(())
    }
}

/// Logs the outcome of a verdict. A rejection is the worker's answer, not a failure of the
/// agent: it is logged and the review request is done with.
fn log_outcome(outcome: &Value, review: &ReviewRequested) {
    let kind = outcome["type"].as_str().unwrap_or_default();
    let data = || outcome["data"].clone();
    if kind == event_type::GATE_REVIEWED {
        if let Ok(reviewed) = serde_json::from_value::<GateReviewed>(data()) {
            tracing::info!(
                ticket_id = %review.ticket_id,
                phase_id = review.phase_id,
                verdict = ?reviewed.verdict,
                "the verdict is recorded"
            );
            return;
        }
    } else if Some(kind) == REVIEW_SUBMIT_REJECTED {
        if let Ok(rejection) = serde_json::from_value::<RejectionData>(data()) {
            if rejection.code == RejectionCode::InvalidRequest {
                tracing::warn!(
                    ticket_id = %review.ticket_id,
                    phase_id = review.phase_id,
                    code = rejection.code.as_str(),
                    reasons = ?rejection.reasons,
                    "the worker found the verdict malformed; skipped"
                );
            } else {
                tracing::info!(
                    ticket_id = %review.ticket_id,
                    phase_id = review.phase_id,
                    code = rejection.code.as_str(),
                    reasons = ?rejection.reasons,
                    "the worker refused the verdict; skipped"
                );
            }
            return;
        }
    }
    tracing::warn!(
        ticket_id = %review.ticket_id,
        outcome_type = kind,
        "an unexpected outcome of a verdict"
    );
}

#[cfg(test)]
mod tests;
