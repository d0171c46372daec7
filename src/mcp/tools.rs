//! The tools: one line of the table below per tool (its name, argument and answer types, whether
//! it changes anything, and its description, written for the model that reads it), and what
//! each does in [`Toolbox::call`].
//!
//! A tool that changes something is one request kind, read by that kind's own parser from the
//! tool's arguments (the ticket a tool names is the request's subject) and applied as an HTTP
//! request of the agent would be; a tool that reads answers what the matching `GET` answers,
//! with the same checks. A refusal of either is an [`ApiError`], which the adapter turns into a
//! tool result with `isError` and `{"code", "message", "reasons"}`.
//!
//! `claim_task` may wait (`wait_seconds`): while no task is claimable it waits for the next new
//! event (see `wakeups`), then asks the workflow whether one is claimable now; it makes the
//! claim when one is, or when the wait is over. Each claim it makes is one request with one
//! outcome; it makes another only when another agent took the task first.

use std::time::Duration;

use schemars::JsonSchema;
use serde_json::{Map, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::arguments::{
    CheckArguments, ClaimAnswer, ClaimArguments, CompleteArguments, ContextArguments,
    ListArguments, NoArguments, TicketArguments, TicketIdArgument,
};
use super::wakeups::Wakeups;
use crate::api::agents::AgentView;
use crate::api::views::{ContextView, TaskPageView, TicketView, TransitionCheckView, WorkflowView};
use crate::api::{self, Agent, ApiError, ApiState, Caller, QueryParams};
use crate::domain::{Phase, TaskId, TicketId};
use crate::protocol::events::{
    ArtifactCollected, GateReviewed, PhaseTransitioned, TaskFinished, TaskLeaseExtended,
    TaskReleased,
};
use crate::protocol::{Event, InvalidRequest, Rejection, RejectionCode};
use crate::workflow::requests::claim_task::ClaimTask;
use crate::workflow::requests::complete_task::CompleteTask;
use crate::workflow::requests::heartbeat_task::HeartbeatTask;
use crate::workflow::requests::release_task::ReleaseTask;
use crate::workflow::{Command, RequestType};
use phaseflow_client::requests::heartbeat_task::HeartbeatTaskData;
use phaseflow_client::requests::release_task::ReleaseTaskData;
use phaseflow_client::requests::review_gate::ReviewGateData;
use phaseflow_client::requests::submit_artifact::SubmitArtifactData;
use phaseflow_client::requests::transition::TransitionData;

/// The longest `claim_task` waits for a task (`wait_seconds`).
pub const MAX_WAIT_SECONDS: u64 = 30;

/// After a new event, how long a waiting claim lets more of the same burst arrive before it
/// looks, so a burst of events costs one look.
const SETTLE: Duration = Duration::from_millis(25);

macro_rules! tools {
    ($($variant:ident = $name:literal, $input:ty => $output:ty, $effect:ident, $description:expr;)+) => {
        /// A tool an agent may call.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Tool {
            $($variant,)+
        }

        impl Tool {
            /// Every tool, in the table's order.
            pub const ALL: &'static [Tool] = &[$(Tool::$variant,)+];

            /// Its name (part of the contract, as its arguments' names are).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Tool::$variant => $name,)+
                }
            }

            /// What it is for, when to call it, and what its refusals mean.
            pub const fn description(self) -> &'static str {
                match self {
                    $(Tool::$variant => $description,)+
                }
            }

            /// Whether it only reads.
            pub const fn read_only(self) -> bool {
                match self {
                    $(Tool::$variant => tools!(@read_only $effect),)+
                }
            }

            /// The JSON schema of its arguments.
            pub fn input_schema(self) -> Map<String, Value> {
                match self {
                    $(Tool::$variant => object_schema::<$input>(),)+
                }
            }

            /// The JSON schema of its answer (`structuredContent`).
            pub fn output_schema(self) -> Map<String, Value> {
                match self {
                    $(Tool::$variant => object_schema::<$output>(),)+
                }
            }
        }
    };
    (@read_only reads) => { true };
    (@read_only changes) => { false };
}

tools! {
    Whoami = "whoami", NoArguments => AgentView, reads,
        "Who you are to phaseflow: your agent id, your roles (which decide the tasks you may \
         claim; `*` is every role), how many tasks you may hold at once (max_claims), your live \
         claims, whether you are an operator, and your daily budget and today's spend. Call it \
         first to learn what you may do.";
    GetWorkflow = "get_workflow", NoArguments => WorkflowView, reads,
        "The workflow every ticket follows: its phases in order, the moves allowed between \
         them, each phase's gate (the artifacts it requires and the rules they must meet) \
         and the task templates generated on entering a phase. Read it to understand where a \
         ticket is and what it needs next.";
    ClaimTask = "claim_task", ClaimArguments => ClaimAnswer, changes,
        "Take a task to work on, for a lease. Without arguments: the most urgent claimable task \
         of any ticket that your roles allow. Narrow it with ticket_id, task_types or a given \
         task_id. The answer is the task (its claim_id, lease_expires_at, description), the \
         guidance of its phase (what the phase is for, what done means, what to hand in) and \
         the ticket's context for that phase: everything you need to start. With \
         wait_seconds (up to 30) it waits for a task to become claimable instead of answering \
         {\"task\": null} at once. While you work, call heartbeat before the lease runs out; \
         finish with complete_task, or release_task if you cannot do it. Refusals: \
         claim_limit_reached (you hold max_claims tasks: finish or release one), \
         budget_exhausted (the ticket's or your daily budget is used up: stop and tell a \
         person), task_not_claimable (the reasons say why: a dependency, another agent's \
         lease, a role you lack).";
    Heartbeat = "heartbeat", HeartbeatTaskData => TaskLeaseExtended, changes,
        "Keep your lease on a task you hold: call it well before lease_expires_at (about every \
         third of the lease), with progress (note, percent, step) and usage (tokens and cost \
         since your last report) when you have them; progress is what tells people your work \
         moves. Refusal lease_lost means the task is no longer yours (your lease ran out, or \
         it was released or claimed again): stop working on it and claim another.";
    ReleaseTask = "release_task", ReleaseTaskData => TaskReleased, changes,
        "Give a task you hold back, unfinished, so another agent can take it (say why in \
         reason). Use it when you cannot do the task; report a task you tried and could not \
         finish with complete_task and status failed instead.";
    CompleteTask = "complete_task", CompleteArguments => TaskFinished, changes,
        "Report a task you hold as done (status completed) or failed (status failed, with \
         error), with its result (summary, outputs, context for later phases), the artifacts \
         it produced (artifact_type and artifact_path or artifact_content each; the phase's \
         gate needs the ones its guidance names) and its usage. The last task of a phase \
         lets the gate be judged, and may move the ticket on. Refusals stale_claim (the \
         claim_id you quote is no longer the task's live claim) and task_claimed_by_other \
         (another agent holds it now): the task is no longer yours and nothing was recorded.";
    SubmitArtifact = "submit_artifact", TicketArguments<SubmitArtifactData> => ArtifactCollected, changes,
        "Hand in an artifact for a ticket's current phase outside a task report: its \
         artifact_type (the name the phase's gate asks for, e.g. design_document) and \
         artifact_path or artifact_content. Artifacts handed in with complete_task need no \
         separate call.";
    GetTicket = "get_ticket", TicketIdArgument => TicketView, reads,
        "A ticket: its title, description, phase, summary of its context, budget and spend, \
         task counts, and valid_transitions (the moves it may make now and whether each is \
         allowed). Refusal ticket_not_found: check the id.";
    ListTasks = "list_tasks", ListArguments => TaskPageView, reads,
        "Tasks of any ticket, oldest first, filtered by status, task_type, ticket_id, or \
         claimable=true (the tasks you could claim now, given your roles). Answers a page; \
         pass next_cursor as cursor for the next one. To take a task, call claim_task.";
    GetContext = "get_context", ContextArguments => ContextView, reads,
        "A ticket's context: what its phases decided and handed in, and its summary. With \
         for_phase, only what the phases before that phase produced, as an agent starting it \
         should read it (claim_task already answers this for its task's phase).";
    CheckTransition = "check_transition", CheckArguments => TransitionCheckView, reads,
        "Ask, without moving anything, whether a ticket could move to to_phase now: whether \
         the move is allowed and the gate passes, with the reasons and missing artifacts or \
         tasks when it does not. Call it before request_transition.";
    RequestTransition = "request_transition", TicketArguments<TransitionData> => PhaseTransitioned, changes,
        "Move a ticket to another phase (to_phase; absent only to take a BLOCKED ticket back \
         to the phase it came from), with a reason. expected_from_phase makes the move \
         conditional on the ticket still being in that phase. Refusals: invalid_transition \
         (the move is not allowed from the ticket's phase), gate_not_met (the reasons name what \
         is missing: hand it in or finish the tasks, then try again), phase_mismatch (the \
         ticket is no longer in expected_from_phase: read it again).";
    SubmitReview = "submit_review", TicketArguments<ReviewGateData> => GateReviewed, changes,
        "Give your verdict on the work of a ticket's phase whose gate needs a review \
         (phase_id: the phase, by default the ticket's current one): approved, or \
         changes_requested with reasons saying what must change. Refusal \
         reviewer_not_independent: you did work in that phase, so another agent must review.";
}

/// The schema of a type as a JSON object (a tool's schemas must be objects of type object).
fn object_schema<T: JsonSchema>() -> Map<String, Value> {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let mut schema = match generator.into_root_schema_for::<T>().to_value() {
        Value::Object(schema) => schema,
        _ => Map::new(),
    };
    schema
        .entry("type")
        .or_insert_with(|| Value::String("object".to_owned()));
    schema
}

impl Tool {
    /// The tool of a name.
    pub fn named(name: &str) -> Option<Tool> {
        Tool::ALL.iter().copied().find(|tool| tool.name() == name)
    }
}

/// What the tools act through: the HTTP API's operations, and the wakeups a waiting claim
/// waits on.
#[derive(Clone)]
pub struct Toolbox {
    pub(super) state: ApiState,
    wakeups: Wakeups,
    /// how long a waiting claim goes without looking when no event arrives
    recheck: Duration,
}

impl Toolbox {
    pub fn new(state: ApiState, wakeups: Wakeups, recheck: Duration) -> Self {
        Toolbox {
            state,
            wakeups,
            recheck,
        }
    }

    /// Calls `tool` for `agent` with `arguments`; `cancel` ends a waiting claim early (the
    /// client cancelled the call or went away).
    pub async fn call(
        &self,
        tool: Tool,
        agent: &Agent,
        arguments: Map<String, Value>,
        cancel: &CancellationToken,
    ) -> Result<Value, ApiError> {
        let mut arguments = arguments;
        let state = &self.state;
        match tool {
            Tool::Whoami => {
                only(&arguments, &[])?;
                to_value(&api::agent_view(state, &agent.id).await?)
            }
            Tool::GetWorkflow => {
                only(&arguments, &[])?;
                to_value(&WorkflowView::from(state.workflow().definition()))
            }
            Tool::GetTicket => {
                only(&arguments, &["ticket_id"])?;
                let ticket_id = required_ticket(&mut arguments)?;
                to_value(&api::ticket(state, ticket_id).await?)
            }
            Tool::GetContext => {
                let ticket_id = required_ticket(&mut arguments)?;
                let query = query_of(arguments)?;
                to_value(&api::context(state, ticket_id, &query).await?)
            }
            Tool::CheckTransition => {
                only(&arguments, &["ticket_id", "to_phase"])?;
                let ticket_id = required_ticket(&mut arguments)?;
                let to_phase = match arguments.get("to_phase") {
                    Some(Value::String(text)) => text
                        .parse::<Phase>()
                        .map_err(|error| ApiError::invalid(vec![format!("to_phase: {error}")]))?,
                    Some(_) => return Err(invalid("to_phase: must be a phase id (a string)")),
                    None => return Err(invalid("to_phase: is required")),
                };
                to_value(&api::transition_check(state, ticket_id, to_phase).await?)
            }
            Tool::ListTasks => {
                let query = query_of(arguments)?;
                to_value(&api::task_page(state, agent, &query).await?)
            }
            Tool::ClaimTask => self.claim(agent, arguments, cancel).await,
            Tool::Heartbeat => {
                let command = task_command(&mut arguments, |task_id, data| {
                    HeartbeatTask::parse_for_task(task_id, data).map(Command::HeartbeatTask)
                });
                self.apply(agent, RequestType::HeartbeatTask, command).await
            }
            Tool::ReleaseTask => {
                let command = task_command(&mut arguments, |task_id, data| {
                    ReleaseTask::parse_for_task(task_id, data).map(Command::ReleaseTask)
                });
                self.apply(agent, RequestType::ReleaseTask, command).await
            }
            Tool::CompleteTask => {
                artifacts_into_result(&mut arguments);
                let command = task_command(&mut arguments, |task_id, data| {
                    CompleteTask::parse_for_task(task_id, data).map(Command::CompleteTask)
                });
                self.apply(agent, RequestType::CompleteTask, command).await
            }
            Tool::SubmitArtifact => {
                let command = ticket_command(RequestType::SubmitArtifact, arguments);
                self.apply(agent, RequestType::SubmitArtifact, command)
                    .await
            }
            Tool::RequestTransition => {
                let command = ticket_command(RequestType::Transition, arguments);
                self.apply(agent, RequestType::Transition, command).await
            }
            Tool::SubmitReview => {
                let command = ticket_command(RequestType::ReviewGate, arguments);
                self.apply(agent, RequestType::ReviewGate, command).await
            }
        }
    }

    /// Applies a request of `agent`; its answer is the outcome event's `data`.
    async fn apply(
        &self,
        agent: &Agent,
        kind: RequestType,
        command: Result<Command, Rejection>,
    ) -> Result<Value, ApiError> {
        let event = self
            .state
            .apply(&Caller::of_agent(&agent.id), kind, &command)
            .await?;
        event_data(&event)
    }

    /// `claim_task`: a claim, made at once, or when a task may be claimable within
    /// `wait_seconds`.
    async fn claim(
        &self,
        agent: &Agent,
        arguments: Map<String, Value>,
        cancel: &CancellationToken,
    ) -> Result<Value, ApiError> {
        let mut arguments = arguments;
        let mut reasons = Vec::new();
        let wait = match arguments.remove("wait_seconds") {
            None | Some(Value::Null) => Duration::ZERO,
            Some(value) => match value.as_u64() {
                Some(seconds) if seconds <= MAX_WAIT_SECONDS => Duration::from_secs(seconds),
                _ => {
                    reasons.push(format!(
                        "wait_seconds: must be a whole number from 0 to {MAX_WAIT_SECONDS}"
                    ));
                    Duration::ZERO
                }
            },
        };
        let subject = match arguments.remove("ticket_id") {
            None | Some(Value::Null) => None,
            Some(value) => match ticket_of(&value) {
                Ok(ticket_id) => Some(ticket_id.to_string()),
                Err(reason) => {
                    reasons.push(reason);
                    None
                }
            },
        };
        let data = Value::Object(arguments);
        let command = match Command::parse(RequestType::ClaimTask, subject.as_deref(), Some(&data))
        {
            Ok(command) if reasons.is_empty() => Ok(command),
            Ok(command) => Err(invalid_request(command.ticket_id(), reasons)),
            Err(mut invalid) => {
                invalid.reasons.extend(reasons);
                Err(Rejection::from(invalid))
            }
        };
        let deadline = Instant::now() + wait;
        // only a claim that may wait listens for events
        let mut events = match wait.is_zero() {
            true => None,
            false => Some(self.wakeups.subscribe().await),
        };
        loop {
            // what happens from here on wakes the wait below
            if let Some(events) = &mut events {
                events.borrow_and_update();
            }
            let claim = match &command {
                Ok(Command::ClaimTask(claim)) => Some(claim),
                _ => None,
            };
            let now = Instant::now();
            let worth_trying = match claim {
                Some(claim) if now < deadline => self.claimable(claim, agent).await?,
                _ => true,
            };
            if worth_trying {
                match self
                    .state
                    .apply(
                        &Caller::of_agent(&agent.id),
                        RequestType::ClaimTask,
                        &command,
                    )
                    .await
                {
                    Ok(Event::TaskClaimed(claimed)) => return self.claimed(*claimed).await,
                    Ok(other) => return event_data(&other),
                    Err(error) if error.code == RejectionCode::NoTaskAvailable.as_str() => {
                        if Instant::now() >= deadline {
                            return to_value(&ClaimAnswer {
                                task: None,
                                claimed: None,
                                context: None,
                            });
                        }
                    }
                    Err(error) => return Err(error),
                }
            }
            // wait for something to happen, for the recheck interval, or for the deadline
            let until = deadline.min(Instant::now() + self.recheck);
            let Some(events) = &mut events else {
                tokio::time::sleep_until(until).await;
                continue;
            };
            tokio::select! {
                changed = events.changed() => {
                    if changed.is_ok() {
                        tokio::time::sleep(SETTLE).await;
                    } else {
                        tokio::time::sleep_until(until).await;
                    }
                }
                () = tokio::time::sleep_until(until) => {}
                () = cancel.cancelled() => {
                    return Err(ApiError::new(
                        axum::http::StatusCode::REQUEST_TIMEOUT,
                        "cancelled",
                        "the call was cancelled while waiting for a task; nothing was claimed",
                    ));
                }
            }
        }
    }

    /// Whether `claim` would find a task for `agent` now.
    async fn claimable(&self, claim: &ClaimTask, agent: &Agent) -> Result<bool, ApiError> {
        claim
            .would_find(self.state.workflow(), &agent.profile, api::retry_policy())
            .await
            .map_err(|error| ApiError::from_workflow(&error))
    }

    /// The answer to a claim that succeeded: the claim, and the ticket's context for its phase.
    async fn claimed(
        &self,
        claimed: crate::protocol::events::TaskClaimed,
    ) -> Result<Value, ApiError> {
        let phase = claimed.phase_id;
        let query = match phase.earlier_in_sequence() {
            Some(_) => vec![("for_phase".to_owned(), phase.as_str().to_owned())],
            None => Vec::new(),
        };
        let read = api::context(
            &self.state,
            claimed.ticket_id,
            &QueryParams::from_pairs(query),
        )
        .await;
        let context: Option<ContextView> = match read {
            Ok(context) => Some(context),
            Err(error) => {
                // the claim stands; the agent can read the context with get_context
                tracing::warn!(
                    code = error.code,
                    message = error.message,
                    "the claimed task's context could not be read"
                );
                None
            }
        };
        to_value(&ClaimAnswer {
            task: Some(claimed.clone()),
            claimed: Some(claimed),
            context,
        })
    }
}

/// A request about the task `task_id` names, read by `parse` from the other arguments.
fn task_command(
    arguments: &mut Map<String, Value>,
    parse: impl FnOnce(TaskId, Option<&Value>) -> Result<Command, InvalidRequest>,
) -> Result<Command, Rejection> {
    let task_id = match arguments.remove("task_id") {
        None | Some(Value::Null) => Err("task_id: is required".to_owned()),
        Some(Value::String(text)) => uuid::Uuid::parse_str(&text)
            .map(TaskId)
            .map_err(|_| format!("task_id: `{text}` is not a UUID")),
        Some(_) => Err("task_id: must be a UUID (a string)".to_owned()),
    };
    let data = Value::Object(std::mem::take(arguments));
    match task_id {
        Ok(task_id) => parse(task_id, Some(&data)).map_err(Rejection::from),
        Err(reason) => Err(invalid_request(None, vec![reason])),
    }
}

/// A request about the ticket `ticket_id` names (its subject), its `data` the other arguments.
fn ticket_command(kind: RequestType, arguments: Map<String, Value>) -> Result<Command, Rejection> {
    let mut arguments = arguments;
    let ticket = match arguments.remove("ticket_id") {
        None | Some(Value::Null) => Err("ticket_id: is required".to_owned()),
        Some(value) => ticket_of(&value),
    };
    match ticket {
        Ok(ticket_id) => Command::parse(
            kind,
            Some(&ticket_id.to_string()),
            Some(&Value::Object(arguments)),
        )
        .map_err(Rejection::from),
        Err(reason) => Err(invalid_request(None, vec![reason])),
    }
}

/// `complete_task`'s `artifacts`, moved to `result.artifacts` where a task report has them.
fn artifacts_into_result(arguments: &mut Map<String, Value>) {
    let Some(artifacts) = arguments.remove("artifacts") else {
        return;
    };
    let result = arguments
        .entry("result")
        .or_insert_with(|| Value::Object(Map::new()));
    match (result, artifacts) {
        (Value::Object(result), Value::Array(given)) => match result.get_mut("artifacts") {
            Some(Value::Array(listed)) => listed.extend(given),
            Some(_) => {}
            None => {
                result.insert("artifacts".to_owned(), Value::Array(given));
            }
        },
        // not where a report has them: left for the report's parser to name
        (_, artifacts) => {
            arguments.insert("artifacts".to_owned(), artifacts);
        }
    }
}

/// A ticket id argument.
fn ticket_of(value: &Value) -> Result<TicketId, String> {
    match value {
        Value::String(text) => uuid::Uuid::parse_str(text)
            .map(TicketId)
            .map_err(|_| format!("ticket_id: `{text}` is not a UUID")),
        _ => Err("ticket_id: must be a UUID (a string)".to_owned()),
    }
}

/// The required `ticket_id` of a read, taken from the arguments.
fn required_ticket(arguments: &mut Map<String, Value>) -> Result<TicketId, ApiError> {
    match arguments.remove("ticket_id") {
        None | Some(Value::Null) => Err(invalid("ticket_id: is required")),
        Some(value) => ticket_of(&value).map_err(|reason| ApiError::invalid(vec![reason])),
    }
}

/// Refuses arguments other than `known`.
fn only(arguments: &Map<String, Value>, known: &[&str]) -> Result<(), ApiError> {
    let reasons: Vec<String> = arguments
        .keys()
        .filter(|name| !known.contains(&name.as_str()))
        .map(|name| {
            format!(
                "{name}: unknown argument; expected {}",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    format!("one of {}", known.join(", "))
                }
            )
        })
        .collect();
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(reasons))
    }
}

/// A read's arguments as the query parameters of its `GET` (null ones left out).
fn query_of(arguments: Map<String, Value>) -> Result<QueryParams, ApiError> {
    let mut pairs = Vec::new();
    let mut reasons = Vec::new();
    for (name, value) in arguments {
        match value {
            Value::Null => {}
            Value::String(text) => pairs.push((name, text)),
            Value::Bool(flag) => pairs.push((name, flag.to_string())),
            Value::Number(number) => pairs.push((name, number.to_string())),
            _ => reasons.push(format!("{name}: must be a string, number or boolean")),
        }
    }
    if reasons.is_empty() {
        Ok(QueryParams::from_pairs(pairs))
    } else {
        Err(ApiError::invalid(reasons))
    }
}

fn invalid(reason: &str) -> ApiError {
    ApiError::invalid(vec![reason.to_owned()])
}

fn invalid_request(ticket_id: Option<TicketId>, reasons: Vec<String>) -> Rejection {
    Rejection::from(InvalidRequest {
        ticket_id,
        reasons,
        details: Map::new(),
    })
}

/// An outcome event's `data`.
fn event_data(event: &Event) -> Result<Value, ApiError> {
    event.data().map_err(|error| internal(error.into()))
}

fn to_value(answer: &impl serde::Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(answer).map_err(|error| internal(error.into()))
}

fn internal(error: anyhow::Error) -> ApiError {
    ApiError::from_workflow(&crate::workflow::WorkflowError::Failed(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_a_unique_name_and_object_schemas() {
        let mut names: Vec<&str> = Tool::ALL.iter().map(|tool| tool.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Tool::ALL.len());
        for tool in Tool::ALL {
            assert_eq!(Tool::named(tool.name()), Some(*tool));
            for schema in [tool.input_schema(), tool.output_schema()] {
                assert_eq!(schema["type"], "object", "{}", tool.name());
            }
        }
    }

    #[test]
    fn docs_mcp_lists_every_tool() {
        let docs = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/mcp.md"));
        for tool in Tool::ALL {
            assert!(
                docs.contains(&format!("| `{}` |", tool.name())),
                "docs/mcp.md has no row for {}",
                tool.name()
            );
        }
    }

    #[test]
    fn complete_task_artifacts_join_the_result() {
        let mut arguments = serde_json::json!({
            "task_id": "x",
            "result": {"summary": "s", "artifacts": [{"artifact_type": "a"}]},
            "artifacts": [{"artifact_type": "b"}],
        });
        let Value::Object(map) = &mut arguments else {
            unreachable!()
        };
        artifacts_into_result(map);
        assert_eq!(
            map["result"]["artifacts"],
            serde_json::json!([{"artifact_type": "a"}, {"artifact_type": "b"}])
        );
        assert!(!map.contains_key("artifacts"));
    }

    #[test]
    fn claim_task_arguments_name_wait_seconds_and_the_claim() {
        let schema = Tool::ClaimTask.input_schema();
        let properties = schema["properties"].as_object().unwrap();
        for name in [
            "ticket_id",
            "task_id",
            "task_types",
            "lease_seconds",
            "wait_seconds",
        ] {
            assert!(properties.contains_key(name), "{name}");
        }
    }
}
