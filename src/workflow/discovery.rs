//! Discovery: what the workflow would do, said without doing it. Which moves a ticket may make
//! now and why not ([`Workflow::ticket_overview`]), what a transition to a given phase would come
//! to ([`Workflow::check_transition`]), the moves of the definition itself ([`moves_from`]) and
//! the context an agent entering a phase would read ([`Workflow::context_for_phase`]).
//!
//! The checks a real `phase.transition.requested` makes before it moves a ticket are the
//! functions [`plan`], [`refused`] and [`gate_not_met`] here, and it judges the gate with the
//! same `gates::judge`; so what discovery says is what a transition does. Nothing here may write:
//! reads run in a read-only snapshot that is rolled back, no gate result is stored and no event
//! is written.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::domain::{
    summarize, GateEvaluation, InvalidTransition, Phase, PhaseRules, TicketBrief, TicketId,
    TransitionKind, WorkflowDefinition,
};
use crate::protocol::{Rejection, RejectionCode};
use crate::store::artifacts::ArtifactRecord;
use crate::store::reviews::ReviewRecord;
use crate::store::tasks::TaskRecord;
use crate::store::tickets::TicketRecord;
use crate::store::{self, PgConnection};

use super::{gates, reviews, RetryPolicy, Workflow, WorkflowError};

/// A move the phase table allows, as a transition would make it: its kind, and the phase whose
/// gate it checks (only when that phase has a gate configured: a phase without one passes, and
/// its gate is not checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Planned {
    pub kind: TransitionKind,
    pub gate: Option<Phase>,
}

/// Plans the move of a ticket in `from` (having come from `previous`) to `to`: the phase table
/// and the rule that leaving BLOCKED skips no gate. A refused move is answered with
/// [`refused`].
pub(crate) fn plan(
    definition: &WorkflowDefinition,
    from: Phase,
    previous: Option<Phase>,
    to: Phase,
) -> Result<Planned, InvalidTransition> {
    let transition = from.plan_transition(to, previous)?;
    Ok(Planned {
        kind: transition.kind,
        gate: transition
            .gate
            .filter(|phase| definition.gates.for_phase(*phase).is_some()),
    })
}

/// The `invalid_transition` rejection of a move [`plan`] refused, saying why.
pub(crate) fn refused(ticket_id: TicketId, invalid: &InvalidTransition) -> Rejection {
    Rejection::new(
        RejectionCode::InvalidTransition,
        Some(ticket_id),
        invalid.to_string(),
    )
}

/// The `gate_not_met` rejection of a move through the gate of `gate`, when that gate did not
/// pass: its blocking reasons (or its status when it gave none), `gate_status` and
/// `missing_artifacts`. `None` when the gate passed.
pub(crate) fn gate_not_met(
    ticket_id: TicketId,
    gate: Phase,
    evaluation: &GateEvaluation,
) -> Option<Rejection> {
    if evaluation.requirements_met {
        return None;
    }
    let mut reasons = evaluation.blocking_reasons.clone();
    if reasons.is_empty() {
        reasons.push(format!(
            "the gate of {gate} is {}",
            evaluation.status.as_str()
        ));
    }
    Some(
        Rejection::new(RejectionCode::GateNotMet, Some(ticket_id), "")
            .with_reasons(reasons)
            .with_detail("gate_status", evaluation.status.as_str())
            .with_detail(
                "missing_artifacts",
                Value::from(evaluation.missing_artifacts.clone()),
            ),
    )
}

/// What a transition of a ticket to one phase would come to now.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionCheck {
    /// the ticket's phase
    pub from_phase: Phase,
    pub to_phase: Phase,
    /// the phase whose gate the move checks; `None` for an ungated or refused move
    pub gate_phase: Option<Phase>,
    /// that gate, judged on the ticket's tasks and artifacts as they are
    pub evaluation: Option<GateEvaluation>,
    /// what the transition would be rejected with; `None`: it would move the ticket
    pub rejection: Option<Rejection>,
}

impl TransitionCheck {
    /// Whether the transition would move the ticket.
    pub fn allowed(&self) -> bool {
        self.rejection.is_none()
    }

    /// Whether the move checks a gate.
    pub fn gated(&self) -> bool {
        self.gate_phase.is_some()
    }
}

/// A ticket with the moves the phase table offers it, each checked as a transition would be.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketOverview {
    pub ticket: TicketRecord,
    /// one per phase the table allows from the ticket's phase, in the table's order (none in
    /// DONE)
    pub transitions: Vec<TransitionCheck>,
}

/// The stored tasks and artifacts of the phases whose gates some tickets' moves check, by
/// ticket and phase: what [`gates::judge`] needs.
#[derive(Debug, Default)]
pub(crate) struct GateInputs {
    by_phase: BTreeMap<(TicketId, Phase), (Vec<TaskRecord>, Vec<ArtifactRecord>)>,
    /// for gates that require a review: the review of the phase as it is now
    reviews: BTreeMap<(TicketId, Phase), ReviewRecord>,
}

impl GateInputs {
    /// Reads, for each of `gates` whose gate requires a review, the review of the phase as it
    /// is now.
    pub(crate) async fn add_reviews(
        &mut self,
        definition: &WorkflowDefinition,
        connection: &mut PgConnection,
        gates: &[(TicketId, Phase)],
    ) -> Result<(), WorkflowError> {
        for &(ticket_id, phase) in gates {
            if reviews::required(definition, phase) {
                if let Some(review) = reviews::current(connection, ticket_id, phase).await? {
                    self.reviews.insert((ticket_id, phase), review);
                }
            }
        }
        Ok(())
    }

    /// Files tasks under their ticket and phase, in the order given (oldest first).
    pub(crate) fn add_tasks(&mut self, tasks: Vec<TaskRecord>) {
        for task in tasks {
            self.entry(task.ticket_id, task.phase).0.push(task);
        }
    }

    /// Files artifacts collected for a ticket's phase, in the order given (oldest first).
    pub(crate) fn add_artifacts(&mut self, artifacts: Vec<(TicketId, Phase, ArtifactRecord)>) {
        for (ticket_id, phase, artifact) in artifacts {
            self.entry(ticket_id, phase).1.push(artifact);
        }
    }

    fn entry(
        &mut self,
        ticket_id: TicketId,
        phase: Phase,
    ) -> &mut (Vec<TaskRecord>, Vec<ArtifactRecord>) {
        self.by_phase.entry((ticket_id, phase)).or_default()
    }

    fn judge(
        &self,
        definition: &WorkflowDefinition,
        ticket_id: TicketId,
        phase: Phase,
    ) -> GateEvaluation {
        let (tasks, artifacts) = self
            .by_phase
            .get(&(ticket_id, phase))
            .map_or((&[][..], &[][..]), |(tasks, artifacts)| {
                (tasks.as_slice(), artifacts.as_slice())
            });
        let review = self.reviews.get(&(ticket_id, phase));
        gates::judge(definition, phase, tasks, artifacts, review)
    }
}

/// The phases whose gates the moves to `targets` of a ticket would check: the tasks and
/// artifacts of these must be in the [`GateInputs`] its checks are made with.
pub(crate) fn gates_to_check(
    definition: &WorkflowDefinition,
    ticket: &TicketRecord,
    targets: &[Phase],
) -> Vec<Phase> {
    let mut phases: Vec<Phase> = targets
        .iter()
        .filter_map(|to| {
            plan(definition, ticket.phase, ticket.previous_phase, *to)
                .ok()
                .and_then(|planned| planned.gate)
        })
        .collect();
    phases.sort();
    phases.dedup();
    phases
}

/// Checks a ticket's move to `to` as a transition would, judging its gate on `inputs`.
pub(crate) fn check(
    definition: &WorkflowDefinition,
    ticket: &TicketRecord,
    to: Phase,
    inputs: &GateInputs,
) -> TransitionCheck {
    let planned = plan(definition, ticket.phase, ticket.previous_phase, to);
    let (gate_phase, evaluation, rejection) = match planned {
        Err(invalid) => (None, None, Some(refused(ticket.id, &invalid))),
        Ok(Planned { gate: None, .. }) => (None, None, None),
        Ok(Planned {
            gate: Some(gate), ..
        }) => {
            let evaluation = inputs.judge(definition, ticket.id, gate);
            let rejection = gate_not_met(ticket.id, gate, &evaluation);
            (Some(gate), Some(evaluation), rejection)
        }
    };
    TransitionCheck {
        from_phase: ticket.phase,
        to_phase: to,
        gate_phase,
        evaluation,
        rejection,
    }
}

/// A ticket with every move the phase table offers it, checked on `inputs`.
pub(crate) fn overview(
    definition: &WorkflowDefinition,
    ticket: TicketRecord,
    inputs: &GateInputs,
) -> TicketOverview {
    let transitions = ticket
        .phase
        .allowed_targets()
        .iter()
        .map(|to| check(definition, &ticket, *to, inputs))
        .collect();
    TicketOverview {
        ticket,
        transitions,
    }
}

/// Reads the tasks and artifacts of the gates the moves of `ticket` to `targets` check.
async fn gate_inputs(
    definition: &WorkflowDefinition,
    connection: &mut PgConnection,
    ticket: &TicketRecord,
    targets: &[Phase],
) -> Result<GateInputs, WorkflowError> {
    let mut inputs = GateInputs::default();
    let phases = gates_to_check(definition, ticket, targets);
    let gates: Vec<(TicketId, Phase)> = phases.iter().map(|phase| (ticket.id, *phase)).collect();
    inputs.add_reviews(definition, connection, &gates).await?;
    for phase in phases {
        inputs.add_tasks(store::tasks::for_phase(connection, ticket.id, phase).await?);
        let artifacts = store::artifacts::artifacts(connection, ticket.id, phase).await?;
        inputs.add_artifacts(
            artifacts
                .into_iter()
                .map(|artifact| (ticket.id, phase, artifact))
                .collect(),
        );
    }
    Ok(inputs)
}

/// How a move of the definition's phase table is guarded, for any ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveRule {
    pub to_phase: Phase,
    pub kind: TransitionKind,
    /// The phase whose gate the move checks. For a move out of BLOCKED it depends on where the
    /// ticket was blocked from: this is the gate checked when it was blocked from the phase
    /// right before `to_phase`.
    pub gate_phase: Option<Phase>,
    /// Out of BLOCKED only: the phases a ticket may have been blocked from, by what the move
    /// then is.
    pub from_blocked: Option<FromBlocked>,
}

/// What leaving BLOCKED for a phase is, by the phase the ticket was blocked from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FromBlocked {
    /// blocked from these: the move checks no gate
    pub ungated: Vec<Phase>,
    /// blocked from these: the move checks their gate
    pub gated: Vec<Phase>,
    /// blocked from these: the move is refused (`invalid_transition`)
    pub refused: Vec<Phase>,
}

/// The moves the phase table allows out of `from`, each with the gate it checks, planned as a
/// transition plans them.
pub fn moves_from(definition: &WorkflowDefinition, from: Phase) -> Vec<MoveRule> {
    // the phases a ticket can be in when it is blocked (the ones it can be blocked from)
    let blockable: Vec<Phase> = Phase::ALL
        .into_iter()
        .filter(|phase| phase.allowed_targets().contains(&Phase::Blocked))
        .collect();
    from.allowed_targets()
        .iter()
        .filter_map(|to| {
            if from != Phase::Blocked {
                let planned = plan(definition, from, None, *to).ok()?;
                return Some(MoveRule {
                    to_phase: *to,
                    kind: planned.kind,
                    gate_phase: planned.gate,
                    from_blocked: None,
                });
            }
            let mut rule = FromBlocked::default();
            let mut gate_phase = None;
            for origin in &blockable {
                match plan(definition, from, Some(*origin), *to) {
                    Ok(Planned {
                        gate: Some(gate), ..
                    }) => {
                        rule.gated.push(*origin);
                        gate_phase = Some(gate);
                    }
                    Ok(_) => rule.ungated.push(*origin),
                    Err(_) => rule.refused.push(*origin),
                }
            }
            Some(MoveRule {
                to_phase: *to,
                kind: TransitionKind::Unblock,
                gate_phase,
                from_blocked: Some(rule),
            })
        })
        .collect()
}

/// A ticket's context restricted to the phases before one in the normal sequence, and the
/// summary of the ticket and those phases alone.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextBefore {
    pub ticket_id: TicketId,
    /// the phase whose earlier phases these are
    pub for_phase: Phase,
    /// one key per aggregated phase among the earlier ones
    pub full_context: Map<String, Value>,
    pub summary: String,
    pub last_updated: DateTime<Utc>,
}

impl Workflow {
    /// A ticket with every move the phase table offers it, each checked on the ticket's tasks
    /// and artifacts as a transition would check it; `None` when the ticket does not exist.
    pub async fn ticket_overview(
        &self,
        ticket_id: TicketId,
        retry: RetryPolicy,
    ) -> Result<Option<TicketOverview>, WorkflowError> {
        self.read_retrying(retry, || async {
            let mut snapshot = store::listings::begin_snapshot(&self.pool).await?;
            let Some(ticket) = store::tickets::find(&mut snapshot, ticket_id).await? else {
                return Ok(None);
            };
            let targets = ticket.phase.allowed_targets();
            let inputs = gate_inputs(self.definition(), &mut snapshot, &ticket, targets).await?;
            snapshot.rollback().await?;
            Ok(Some(overview(self.definition(), ticket, &inputs)))
        })
        .await
    }

    /// What a `phase.transition.requested` to `to` would come to now: a dry run that stores no
    /// gate result and writes no event. `None` when the ticket does not exist.
    pub async fn check_transition(
        &self,
        ticket_id: TicketId,
        to: Phase,
        retry: RetryPolicy,
    ) -> Result<Option<TransitionCheck>, WorkflowError> {
        self.read_retrying(retry, || async {
            let mut snapshot = store::listings::begin_snapshot(&self.pool).await?;
            let Some(ticket) = store::tickets::find(&mut snapshot, ticket_id).await? else {
                return Ok(None);
            };
            let inputs = gate_inputs(self.definition(), &mut snapshot, &ticket, &[to]).await?;
            snapshot.rollback().await?;
            Ok(Some(check(self.definition(), &ticket, to, &inputs)))
        })
        .await
    }

    /// The context an agent entering `phase` builds on: the aggregated phases before it in the
    /// normal sequence, and a summary of the ticket and those alone. `None` when the ticket does
    /// not exist. `phase` must be in the normal sequence (not BLOCKED).
    pub async fn context_for_phase(
        &self,
        ticket_id: TicketId,
        phase: Phase,
        retry: RetryPolicy,
    ) -> Result<Option<ContextBefore>, WorkflowError> {
        let earlier = phase.earlier_in_sequence().ok_or_else(|| {
            WorkflowError::Failed(anyhow::anyhow!(
                "{phase} is not in the normal sequence, so no phases come before it"
            ))
        })?;
        let Some(ticket) = self.find_ticket(ticket_id, retry).await? else {
            return Ok(None);
        };
        let full_context: Map<String, Value> = ticket
            .context
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(key, _)| {
                Phase::from_context_key(key).is_some_and(|phase| earlier.contains(&phase))
            })
            .collect();
        let brief = TicketBrief {
            title: &ticket.title,
            priority: ticket.priority,
            description: &ticket.description,
        };
        let summary = summarize(&brief, &full_context, self.max_summary_tokens);
        Ok(Some(ContextBefore {
            ticket_id,
            for_phase: phase,
            full_context,
            summary: summary.text,
            last_updated: ticket.context_updated_at.unwrap_or(ticket.updated_at),
        }))
    }
}
