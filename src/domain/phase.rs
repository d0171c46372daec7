//! The table of moves between phases (docs/protocol.md, "Phases and transitions"), as the
//! [`PhaseRules`] of [`Phase`].
//!
//! This module answers "may a ticket go from here to there, and what kind of move is it?" and
//! "where does an unblocked ticket return to?". It must not know about gates' contents, storage or
//! messaging: callers decide what to do with a [`TransitionKind`] (for example, check the gate of
//! the phase being left only when [`TransitionKind::checks_gate`] says so). The phases themselves,
//! their names and their normal order, are the protocol's ([`Phase`]).

pub use phaseflow_client::phase::{Phase, UnknownPhase};

/// The workflow's rules about moving between phases.
pub trait PhaseRules: Sized {
    /// The phases a ticket in this phase may move to; anything else is rejected as
    /// `invalid_transition`.
    fn allowed_targets(self) -> &'static [Phase];

    /// Says whether the phase table allows moving to `to` and, if so, what kind of move it is,
    /// because the kind decides whether a gate is checked and whether re-entry tasks are
    /// generated. A move out of BLOCKED also depends on where the ticket was blocked from: use
    /// [`PhaseRules::plan_transition`] for a ticket's actual move.
    fn classify_transition(self, to: Phase) -> Result<TransitionKind, InvalidTransition>;

    /// The move a ticket in this phase makes to `to`, and whose gate guards it.
    ///
    /// `blocked_from` is the phase a BLOCKED ticket was blocked from (its previous phase); it is
    /// ignored for other phases. Leaving BLOCKED must not skip a gate: returning to the phase it
    /// was blocked from or an earlier one is ungated; going on to the phase right after it is a
    /// forward move guarded by that phase's gate; anything further ahead is refused. A ticket
    /// with no usable record of where it was blocked from (none, BACKLOG) counts as blocked from
    /// BACKLOG, whose successor is REQUIREMENTS.
    fn plan_transition(
        self,
        to: Phase,
        blocked_from: Option<Phase>,
    ) -> Result<Transition, InvalidTransition>;

    /// Where a ticket leaving BLOCKED goes when the request names no phase: back to the phase it
    /// was blocked from when BLOCKED may go there, otherwise to the latest allowed phase before it
    /// in the sequence (DEPLOYMENT and DONE give TESTING). Without a usable previous phase
    /// (none, BACKLOG, BLOCKED) the work restarts at REQUIREMENTS.
    fn unblock_target(previous: Option<Phase>) -> Phase;
}

impl PhaseRules for Phase {
    fn allowed_targets(self) -> &'static [Phase] {
        match self {
            Phase::Backlog => &[Phase::Requirements],
            Phase::Requirements => &[Phase::Design, Phase::Blocked],
            Phase::Design => &[Phase::Implementation, Phase::Blocked],
            Phase::Implementation => &[Phase::Testing, Phase::Blocked],
            Phase::Testing => &[Phase::Deployment, Phase::Implementation, Phase::Blocked],
            Phase::Deployment => &[Phase::Done, Phase::Blocked],
            Phase::Blocked => &[
                Phase::Requirements,
                Phase::Design,
                Phase::Implementation,
                Phase::Testing,
            ],
            Phase::Done => &[],
        }
    }

    fn classify_transition(self, to: Phase) -> Result<TransitionKind, InvalidTransition> {
        let invalid = InvalidTransition {
            from: self,
            to,
            blocked_from: None,
        };
        if !self.allowed_targets().contains(&to) {
            return Err(invalid);
        }
        if self == Phase::Blocked {
            Ok(TransitionKind::Unblock)
        } else if to == Phase::Blocked {
            Ok(TransitionKind::Block)
        } else if self.next() == Some(to) {
            Ok(TransitionKind::Forward)
        } else if self == Phase::Testing && to == Phase::Implementation {
            Ok(TransitionKind::Regression)
        } else {
            // The table and the rules above agree today; if the table grows a pair these rules do
            // not name, refusing it is safer than guessing its kind.
            Err(invalid)
        }
    }

    fn plan_transition(
        self,
        to: Phase,
        blocked_from: Option<Phase>,
    ) -> Result<Transition, InvalidTransition> {
        let kind = self.classify_transition(to)?;
        let gate = match kind {
            TransitionKind::Forward => Some(self),
            TransitionKind::Block | TransitionKind::Regression => None,
            TransitionKind::Unblock | TransitionKind::UnblockForward => {
                let origin = match blocked_from {
                    Some(phase) if Phase::sequence_position(phase).is_some() => phase,
                    _ => Phase::Backlog,
                };
                let (Some(origin_at), Some(to_at)) = (
                    Phase::sequence_position(origin),
                    Phase::sequence_position(to),
                ) else {
                    return Err(InvalidTransition {
                        from: self,
                        to,
                        blocked_from: Some(origin),
                    });
                };
                if to_at <= origin_at {
                    None
                } else if to_at == origin_at + 1 {
                    return Ok(Transition {
                        kind: TransitionKind::UnblockForward,
                        gate: Some(origin),
                    });
                } else {
                    return Err(InvalidTransition {
                        from: self,
                        to,
                        blocked_from: Some(origin),
                    });
                }
            }
        };
        Ok(Transition { kind, gate })
    }

    fn unblock_target(previous: Option<Phase>) -> Phase {
        let targets = Phase::Blocked.allowed_targets();
        let Some(previous) = previous else {
            return Phase::Requirements;
        };
        if targets.contains(&previous) {
            return previous;
        }
        Phase::SEQUENCE
            .iter()
            .position(|p| *p == previous)
            .and_then(|at| {
                Phase::SEQUENCE[..at]
                    .iter()
                    .rev()
                    .find(|p| targets.contains(p))
                    .copied()
            })
            .unwrap_or(Phase::Requirements)
    }
}

/// What a permitted move means for the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionKind {
    /// To the next phase of the normal sequence: the gate of the phase being left must pass.
    Forward,
    /// TESTING back to IMPLEMENTATION because tests failed: no gate, re-entry tasks.
    Regression,
    /// To BLOCKED: no gate; unfinished tasks wait for the ticket to return.
    Block,
    /// Out of BLOCKED, back to the phase it was blocked from or an earlier one: no gate; the
    /// tasks left unfinished carry over.
    Unblock,
    /// Out of BLOCKED to the phase right after the one it was blocked from: a forward move, so
    /// the gate of the phase it was blocked from must pass.
    UnblockForward,
}

impl TransitionKind {
    /// Forward moves, also those out of BLOCKED, are guarded by a gate.
    pub fn checks_gate(self) -> bool {
        matches!(
            self,
            TransitionKind::Forward | TransitionKind::UnblockForward
        )
    }

    /// A regression makes the entered phase use its re-entry templates.
    pub fn is_regression(self) -> bool {
        self == TransitionKind::Regression
    }
}

/// A move a ticket may make: its kind, and the phase whose gate must pass first (`None` when
/// the move is ungated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub kind: TransitionKind,
    pub gate: Option<Phase>,
}

/// A move that is not allowed; its message says why and what is allowed, so the sender can
/// correct the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe_invalid(self))]
pub struct InvalidTransition {
    /// The ticket's current phase.
    pub from: Phase,
    /// The phase that was asked for.
    pub to: Phase,
    /// Set when the table allows the move but it would skip gates: the phase the ticket was
    /// blocked from.
    pub blocked_from: Option<Phase>,
}

fn describe_invalid(invalid: &InvalidTransition) -> String {
    let InvalidTransition {
        from,
        to,
        blocked_from,
    } = *invalid;
    match blocked_from {
        None => format!(
            "cannot move from {from} to {to}: {}",
            describe_targets(from)
        ),
        Some(origin) => {
            let onward = match origin.next() {
                Some(next) if Phase::Blocked.allowed_targets().contains(&next) => {
                    format!(", or on to {next} through the gate of {origin}")
                }
                _ => String::new(),
            };
            format!(
                "cannot move from {from} to {to}: the ticket was blocked from {origin} and would \
                 skip the gates between; it may return to {origin} or an earlier phase{onward}"
            )
        }
    }
}

fn describe_targets(from: Phase) -> String {
    let targets = from.allowed_targets();
    if targets.is_empty() {
        format!("{from} is terminal and allows no moves")
    } else {
        format!("allowed targets are {}", phase_list(targets))
    }
}

fn phase_list(phases: &[Phase]) -> String {
    phases
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use Phase::*;
    use TransitionKind::*;

    /// The expected kind of every (from, to) pair; `None` means the move is invalid.
    fn expected(from: Phase, to: Phase) -> Option<TransitionKind> {
        match (from, to) {
            (Backlog, Requirements) => Some(Forward),
            (Requirements, Design) => Some(Forward),
            (Requirements, Blocked) => Some(Block),
            (Design, Implementation) => Some(Forward),
            (Design, Blocked) => Some(Block),
            (Implementation, Testing) => Some(Forward),
            (Implementation, Blocked) => Some(Block),
            (Testing, Deployment) => Some(Forward),
            (Testing, Implementation) => Some(Regression),
            (Testing, Blocked) => Some(Block),
            (Deployment, Done) => Some(Forward),
            (Deployment, Blocked) => Some(Block),
            (Blocked, Requirements) => Some(Unblock),
            (Blocked, Design) => Some(Unblock),
            (Blocked, Implementation) => Some(Unblock),
            (Blocked, Testing) => Some(Unblock),
            _ => None,
        }
    }

    #[test]
    fn every_pair_of_the_matrix_is_classified_as_the_transition_table_says() {
        let mut valid = 0;
        for from in Phase::ALL {
            for to in Phase::ALL {
                let got = from.classify_transition(to).ok();
                assert_eq!(got, expected(from, to), "{from} -> {to}");
                if got.is_some() {
                    valid += 1;
                    assert!(from.allowed_targets().contains(&to));
                }
            }
        }
        assert_eq!(valid, 16);
    }

    #[test]
    fn only_forward_moves_check_a_gate_and_only_regression_is_a_regression() {
        assert!(Forward.checks_gate());
        assert!(UnblockForward.checks_gate());
        for kind in [Regression, Block, Unblock] {
            assert!(!kind.checks_gate());
        }
        assert!(Regression.is_regression());
        for kind in [Forward, Block, Unblock, UnblockForward] {
            assert!(!kind.is_regression());
        }
    }

    #[test]
    fn an_invalid_move_names_both_phases_and_the_allowed_targets() {
        let err = Design.classify_transition(Testing).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot move from PHASE_DESIGN to PHASE_TESTING: allowed targets are \
             PHASE_IMPLEMENTATION, PHASE_BLOCKED"
        );
        let err = Done.classify_transition(Backlog).unwrap_err();
        assert!(err.to_string().contains("terminal"), "{err}");
    }

    #[test]
    fn next_follows_the_normal_sequence_and_stops_at_done_and_blocked() {
        for pair in Phase::SEQUENCE.windows(2) {
            assert_eq!(pair[0].next(), Some(pair[1]));
        }
        assert_eq!(Done.next(), None);
        assert_eq!(Blocked.next(), None);
    }

    #[test]
    fn unblocking_returns_to_the_previous_phase_or_the_latest_allowed_one_before_it() {
        assert_eq!(Phase::unblock_target(Some(Design)), Design);
        assert_eq!(Phase::unblock_target(Some(Requirements)), Requirements);
        assert_eq!(Phase::unblock_target(Some(Implementation)), Implementation);
        assert_eq!(Phase::unblock_target(Some(Testing)), Testing);
        assert_eq!(Phase::unblock_target(Some(Deployment)), Testing);
        assert_eq!(Phase::unblock_target(Some(Done)), Testing);
        assert_eq!(Phase::unblock_target(Some(Backlog)), Requirements);
        assert_eq!(Phase::unblock_target(Some(Blocked)), Requirements);
        assert_eq!(Phase::unblock_target(None), Requirements);
        for previous in Phase::ALL {
            let target = Phase::unblock_target(Some(previous));
            assert_eq!(Blocked.classify_transition(target), Ok(Unblock));
        }
    }

    #[test]
    fn leaving_blocked_never_skips_a_gate() {
        // back to where it was blocked from, or earlier: ungated
        for (origin, to) in [
            (Requirements, Requirements),
            (Design, Requirements),
            (Design, Design),
            (Testing, Implementation),
            (Deployment, Testing),
            (Deployment, Requirements),
        ] {
            assert_eq!(
                Blocked.plan_transition(to, Some(origin)),
                Ok(Transition {
                    kind: Unblock,
                    gate: None
                }),
                "blocked from {origin} to {to}"
            );
        }
        // the phase right after: forward, through the gate of the phase it was blocked from
        for (origin, to) in [
            (Requirements, Design),
            (Design, Implementation),
            (Implementation, Testing),
        ] {
            assert_eq!(
                Blocked.plan_transition(to, Some(origin)),
                Ok(Transition {
                    kind: UnblockForward,
                    gate: Some(origin)
                }),
                "blocked from {origin} to {to}"
            );
        }
        // further ahead: refused, saying why
        for (origin, to) in [
            (Requirements, Implementation),
            (Requirements, Testing),
            (Design, Testing),
        ] {
            let err = Blocked.plan_transition(to, Some(origin)).unwrap_err();
            assert_eq!(err.blocked_from, Some(origin));
            let text = err.to_string();
            assert!(text.contains("skip the gates"), "{text}");
            assert!(text.contains(&format!("blocked from {origin}")), "{text}");
            assert!(
                text.contains(&format!("through the gate of {origin}")),
                "{text}"
            );
        }
        // not in the table at all
        let err = Blocked
            .plan_transition(Deployment, Some(Testing))
            .unwrap_err();
        assert_eq!(err.blocked_from, None);
        // with no record of where it was blocked from, only REQUIREMENTS, as a forward move
        // from BACKLOG
        assert_eq!(
            Blocked.plan_transition(Requirements, None).map(|t| t.gate),
            Ok(Some(Backlog))
        );
        assert!(Blocked.plan_transition(Design, None).is_err());
    }

    #[test]
    fn only_forward_moves_name_a_gate() {
        for from in Phase::ALL {
            if from == Blocked {
                continue;
            }
            for to in from.allowed_targets() {
                let transition = from.plan_transition(*to, Some(Requirements)).unwrap();
                let expected_gate = (transition.kind == Forward).then_some(from);
                assert_eq!(transition.gate, expected_gate, "{from} -> {to}");
                assert_eq!(transition.kind.checks_gate(), expected_gate.is_some());
            }
        }
    }

    #[test]
    fn the_terminal_phase_is_the_one_without_moves() {
        for phase in Phase::ALL {
            assert_eq!(phase.is_terminal(), phase.allowed_targets().is_empty());
        }
    }
}
