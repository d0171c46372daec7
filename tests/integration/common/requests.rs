//! One helper per request kind, on either harness ([`super::TestApp`] over the broker,
//! [`super::rules::Rules`] without it): each sends its request and returns its typed
//! [`Outcome`]. A harness supplies how a request is sent and how its outcome is read; the rest
//! is here, so a test reads the same on both.

#![allow(async_fn_in_trait)]

use std::collections::BTreeMap;

use phaseflow::config::Settings;
use phaseflow::domain::Phase;
use phaseflow::protocol::events::{
    ArtifactCollected, GateReviewed, GateValidated, PhaseTransitioned, TaskClaimed, TaskFinished,
    TaskLeaseExtended, TaskReleased, TasksGenerated, TicketCreated,
};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use super::events::{Event, Outcome};
use super::factory::{self, Placed};

/// The agent the helpers' requests come from.
pub const ACTOR: &str = "agent-test";

pub const CREATE: &str = "ticket.create.requested";
pub const TRANSITION: &str = "phase.transition.requested";
pub const VALIDATE_GATE: &str = "gate.validate.requested";
pub const GENERATE_TASKS: &str = "tasks.generate.requested";
pub const COMPLETE_TASK: &str = "task.complete.requested";
pub const SUBMIT_ARTIFACT: &str = "artifact.submit.requested";
pub const CLAIM: &str = "task.claim.requested";
pub const HEARTBEAT: &str = "task.heartbeat.requested";
pub const RELEASE: &str = "task.release.requested";
pub const REVIEW: &str = "gate.review.submit.requested";

/// The event types a request of `request_type` succeeds with, as the request table lists them.
pub fn success_types(request_type: &str) -> &'static [&'static str] {
    match phaseflow::workflow::RequestType::parse(request_type) {
        Ok(kind) => kind.outcome_types(),
        Err(error) => panic!("{error}"),
    }
}

/// A harness requests can be sent through.
pub trait Requests {
    /// Sends a request with the given id from `actor`.
    async fn publish(
        &self,
        actor: &str,
        id: &str,
        request_type: &str,
        subject: Option<&str>,
        data: Value,
    );

    /// The first event a request caused whose type is one of `types`.
    async fn caused_by(&self, request_id: &str, types: &[&str]) -> Event;

    fn test_pool(&self) -> &PgPool;

    fn test_settings(&self) -> &Settings;

    /// Sends a request from [`ACTOR`] and reads its outcome as `T` (or its rejection).
    async fn request<T: DeserializeOwned>(
        &self,
        request_type: &str,
        subject: Option<&str>,
        data: Value,
    ) -> Outcome<T> {
        self.request_as(ACTOR, request_type, subject, data).await
    }

    /// As [`Requests::request`], from another agent.
    async fn request_as<T: DeserializeOwned>(
        &self,
        actor: &str,
        request_type: &str,
        subject: Option<&str>,
        data: Value,
    ) -> Outcome<T> {
        let id = Uuid::new_v4().to_string();
        self.publish(actor, &id, request_type, subject, data).await;
        self.outcome_of_request(&id, request_type).await
    }

    /// The outcome of a request of `request_type` that was sent: its success event or its
    /// `….rejected` (a gated move's `gate.validated`, also caused by it, is not its outcome).
    async fn outcome_of_request<T: DeserializeOwned>(
        &self,
        request_id: &str,
        request_type: &str,
    ) -> Outcome<T> {
        let mut types = success_types(request_type).to_vec();
        types.extend(
            phaseflow::workflow::RequestType::parse(request_type)
                .ok()
                .and_then(|kind| kind.rejection_type()),
        );
        self.caused_by(request_id, &types).await.outcome()
    }

    /// `ticket.create.requested` with this data (a new ticket id unless `subject` names one).
    async fn create(&self, subject: Option<&str>, data: Value) -> Outcome<TicketCreated> {
        self.request(CREATE, subject, data).await
    }

    /// Creates a ticket (in BACKLOG) and returns its id.
    async fn create_ticket(&self, title: &str) -> String {
        let created = self
            .create(None, json!({ "title": title }))
            .await
            .succeeded();
        created.data.ticket_id.to_string()
    }

    /// `phase.transition.requested` to `to` with a reason.
    async fn transition(
        &self,
        ticket: &str,
        to: Phase,
        reason: &str,
    ) -> Outcome<PhaseTransitioned> {
        self.transition_with(ticket, json!({ "to_phase": to, "reason": reason }))
            .await
    }

    /// `phase.transition.requested` with this data.
    async fn transition_with(&self, ticket: &str, data: Value) -> Outcome<PhaseTransitioned> {
        self.request(TRANSITION, Some(ticket), data).await
    }

    /// `phase.transition.requested` with this data from `actor`.
    async fn transition_as(
        &self,
        actor: &str,
        ticket: &str,
        data: Value,
    ) -> Outcome<PhaseTransitioned> {
        self.request_as(actor, TRANSITION, Some(ticket), data).await
    }

    /// `gate.validate.requested` for a phase (the current one when `None`).
    async fn validate_gate(&self, ticket: &str, phase: Option<Phase>) -> Outcome<GateValidated> {
        let data = match phase {
            Some(phase) => json!({ "phase_id": phase }),
            None => json!({}),
        };
        self.request(VALIDATE_GATE, Some(ticket), data).await
    }

    /// `tasks.generate.requested` for a phase (the current one when `None`).
    async fn generate_tasks(&self, ticket: &str, phase: Option<Phase>) -> Outcome<TasksGenerated> {
        let data = match phase {
            Some(phase) => json!({ "phase_id": phase }),
            None => json!({}),
        };
        self.request(GENERATE_TASKS, Some(ticket), data).await
    }

    /// `task.complete.requested`: the task reported completed, with nothing else.
    async fn complete_task(&self, ticket: &str, task: &str) -> Outcome<TaskFinished> {
        self.report_task(ticket, json!({ "task_id": task, "status": "completed" }))
            .await
    }

    /// `task.complete.requested` from `actor`: the task reported completed.
    async fn complete_task_as(
        &self,
        actor: &str,
        ticket: &str,
        task: &str,
    ) -> Outcome<TaskFinished> {
        self.request_as(
            actor,
            COMPLETE_TASK,
            Some(ticket),
            json!({ "task_id": task }),
        )
        .await
    }

    /// `task.complete.requested` with this data (`task_id`, `status`, `result`, `error`).
    async fn report_task(&self, ticket: &str, data: Value) -> Outcome<TaskFinished> {
        self.request(COMPLETE_TASK, Some(ticket), data).await
    }

    /// `artifact.submit.requested` with this data.
    async fn submit_artifact(&self, ticket: &str, data: Value) -> Outcome<ArtifactCollected> {
        self.request(SUBMIT_ARTIFACT, Some(ticket), data).await
    }

    /// `task.claim.requested` from `actor` (of a ticket, or of any when `None`).
    async fn claim(&self, actor: &str, ticket: Option<&str>, data: Value) -> Outcome<TaskClaimed> {
        self.request_as(actor, CLAIM, ticket, data).await
    }

    /// `task.heartbeat.requested` from `actor`.
    async fn heartbeat(
        &self,
        actor: &str,
        ticket: &str,
        data: Value,
    ) -> Outcome<TaskLeaseExtended> {
        self.request_as(actor, HEARTBEAT, Some(ticket), data).await
    }

    /// `task.release.requested` from `actor`.
    async fn release(&self, actor: &str, ticket: &str, data: Value) -> Outcome<TaskReleased> {
        self.request_as(actor, RELEASE, Some(ticket), data).await
    }

    /// `gate.review.submit.requested` from `actor`.
    async fn review(&self, actor: &str, ticket: &str, data: Value) -> Outcome<GateReviewed> {
        self.request_as(actor, REVIEW, Some(ticket), data).await
    }

    /// A new ticket put straight into `phase` with that visit's tasks, in the test's own
    /// database, without any request (see [`factory`]).
    async fn ticket_in(&self, phase: Phase) -> Placed {
        factory::ticket_in(self.test_pool(), self.test_settings(), phase, true).await
    }

    /// As [`Requests::ticket_in`], a ticket that moves only when asked (`auto_advance` off).
    async fn manual_ticket_in(&self, phase: Phase) -> Placed {
        factory::ticket_in(self.test_pool(), self.test_settings(), phase, false).await
    }

    /// The tasks of a ticket's phase, `task_type` -> id, as stored.
    async fn tasks_of(&self, ticket: &str, phase: Phase) -> BTreeMap<String, String> {
        factory::tasks_of(self.test_pool(), ticket, phase).await
    }
}
