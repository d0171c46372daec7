//! The phases a ticket moves through and the table of moves between them (docs/protocol.md,
//! "Phases and transitions").
//!
//! This module answers "may a ticket go from here to there, and what kind of move is it?" and
//! "where does an unblocked ticket return to?". It must not know about gates' contents, storage or
//! messaging: callers decide what to do with a [`TransitionKind`] (for example, check the gate of
//! the phase being left only when [`TransitionKind::checks_gate`] says so).

use super::wire::wire_enum;

wire_enum! {
    /// A stage of a ticket's life. The wire form (`PHASE_DESIGN`, …) is what agents, events and the
    /// database use; the short name (`design`) is the human form used in context keys and summaries.
    #[derive(PartialOrd, Ord)]
    pub enum Phase, error UnknownPhase("phase") {
        /// Where every new ticket starts. It has no tasks, so it is left only when someone asks to
        /// move it to REQUIREMENTS.
        Backlog = "PHASE_BACKLOG",
        /// Entered from BACKLOG (or by unblocking). Left forward to DESIGN once its gate passes, or
        /// to BLOCKED.
        Requirements = "PHASE_REQUIREMENTS",
        /// Entered from REQUIREMENTS (or by unblocking). Left forward to IMPLEMENTATION once its
        /// gate passes, or to BLOCKED.
        Design = "PHASE_DESIGN",
        /// Entered from DESIGN, by regression from TESTING (then with re-entry tasks such as fixing the
        /// failing tests), or by unblocking. Left forward to TESTING once its gate passes, or to
        /// BLOCKED.
        Implementation = "PHASE_IMPLEMENTATION",
        /// Entered from IMPLEMENTATION (or by unblocking). Left forward to DEPLOYMENT once all tests
        /// pass; sent back to IMPLEMENTATION (regression) when they fail; or moved to BLOCKED.
        Testing = "PHASE_TESTING",
        /// Entered from TESTING. Left forward to DONE once a deployment succeeded, or to BLOCKED.
        /// It is not an unblock target: a ticket blocked here returns to TESTING.
        Deployment = "PHASE_DEPLOYMENT",
        /// Entered from any working phase when the work cannot go on. Left only by unblocking, to
        /// REQUIREMENTS, DESIGN, IMPLEMENTATION or TESTING (by default the phase it was blocked from,
        /// see [`Phase::unblock_target`]). Entering it checks no gate; leaving it for the phase it was
        /// blocked from or an earlier one checks none either, while going on to the phase right
        /// after that one checks the gate of the phase it was blocked from.
        Blocked = "PHASE_BLOCKED",
        /// Entered from DEPLOYMENT when its gate passes. Terminal: nothing moves a ticket out.
        Done = "PHASE_DONE",
    }
}

impl Phase {
    /// The normal sequence a ticket follows when nothing goes wrong; BLOCKED is not part of it.
    pub const SEQUENCE: [Phase; 7] = [
        Phase::Backlog,
        Phase::Requirements,
        Phase::Design,
        Phase::Implementation,
        Phase::Testing,
        Phase::Deployment,
        Phase::Done,
    ];

    /// The lowercase name people read: summary headings and context keys use it.
    pub fn short_name(self) -> &'static str {
        match self {
            Phase::Backlog => "backlog",
            Phase::Requirements => "requirements",
            Phase::Design => "design",
            Phase::Implementation => "implementation",
            Phase::Testing => "testing",
            Phase::Deployment => "deployment",
            Phase::Blocked => "blocked",
            Phase::Done => "done",
        }
    }

    /// The key under which this phase's context lives in a ticket's `full_context`
    /// so that aggregating one phase never touches another's.
    pub fn context_key(self) -> String {
        format!("{}_phase", self.short_name())
    }

    /// Inverse of [`Phase::context_key`], for reading a stored `full_context` back.
    pub fn from_context_key(key: &str) -> Option<Phase> {
        let short = key.strip_suffix("_phase")?;
        Phase::ALL.into_iter().find(|p| p.short_name() == short)
    }

    /// The phase a forward move goes to. `None` for DONE (terminal) and BLOCKED (which is left by
    /// unblocking, never forward).
    pub fn next(self) -> Option<Phase> {
        match self {
            Phase::Backlog => Some(Phase::Requirements),
            Phase::Requirements => Some(Phase::Design),
            Phase::Design => Some(Phase::Implementation),
            Phase::Implementation => Some(Phase::Testing),
            Phase::Testing => Some(Phase::Deployment),
            Phase::Deployment => Some(Phase::Done),
            Phase::Blocked | Phase::Done => None,
        }
    }

    /// The phases a ticket in this phase may move to; anything else is rejected as
    /// `invalid_transition`.
    pub fn allowed_targets(self) -> &'static [Phase] {
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

    /// Says whether the phase table allows moving to `to` and, if so, what kind of move it is,
    /// because the kind decides whether a gate is checked and whether re-entry tasks are
    /// generated. A move out of BLOCKED also depends on where the ticket was blocked from: use
    /// [`Phase::plan_transition`] for a ticket's actual move.
    pub fn classify_transition(self, to: Phase) -> Result<TransitionKind, InvalidTransition> {
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

    /// The move a ticket in this phase makes to `to`, and whose gate guards it.
    ///
    /// `blocked_from` is the phase a BLOCKED ticket was blocked from (its previous phase); it is
    /// ignored for other phases. Leaving BLOCKED must not skip a gate: returning to the phase it
    /// was blocked from or an earlier one is ungated; going on to the phase right after it is a
    /// forward move guarded by that phase's gate; anything further ahead is refused. A ticket
    /// with no usable record of where it was blocked from (none, BACKLOG) counts as blocked from
    /// BACKLOG, whose successor is REQUIREMENTS.
    pub fn plan_transition(
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

    /// Where the phase stands in the normal sequence; `None` for BLOCKED.
    fn sequence_position(phase: Phase) -> Option<usize> {
        Phase::SEQUENCE.iter().position(|p| *p == phase)
    }

    /// The phases before this one in the normal sequence, BACKLOG first (empty for BACKLOG);
    /// `None` for BLOCKED, which is not part of the sequence.
    pub fn earlier_in_sequence(self) -> Option<&'static [Phase]> {
        let sequence: &'static [Phase] = &Phase::SEQUENCE;
        Phase::sequence_position(self).map(|at| &sequence[..at])
    }

    /// Where a ticket leaving BLOCKED goes when the request names no phase: back to the phase it
    /// was blocked from when BLOCKED may go there, otherwise to the latest allowed phase before it
    /// in the sequence (DEPLOYMENT and DONE give TESTING). Without a usable previous phase
    /// (none, BACKLOG, BLOCKED) the work restarts at REQUIREMENTS.
    pub fn unblock_target(previous: Option<Phase>) -> Phase {
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

    /// Whether the ticket's work is over: nothing moves it out and no tasks are generated.
    pub fn is_terminal(self) -> bool {
        self == Phase::Done
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
    fn wire_names_round_trip_through_text_and_serde() {
        for phase in Phase::ALL {
            assert_eq!(phase.as_str().parse::<Phase>(), Ok(phase));
            assert_eq!(phase.to_string(), phase.as_str());
            let json = serde_json::to_string(&phase).unwrap();
            assert_eq!(json, format!("\"{}\"", phase.as_str()));
            assert_eq!(serde_json::from_str::<Phase>(&json).unwrap(), phase);
            assert_eq!(Phase::from_context_key(&phase.context_key()), Some(phase));
        }
        assert_eq!(Design.short_name(), "design");
        assert_eq!(Design.context_key(), "design_phase");
    }

    #[test]
    fn parsing_is_exact_and_the_error_lists_every_phase() {
        let err = "phase_design".parse::<Phase>().unwrap_err();
        assert_eq!(err, UnknownPhase("phase_design".into()));
        assert_eq!(
            err.to_string(),
            "unknown phase `phase_design`; expected one of PHASE_BACKLOG, PHASE_REQUIREMENTS, \
             PHASE_DESIGN, PHASE_IMPLEMENTATION, PHASE_TESTING, PHASE_DEPLOYMENT, PHASE_BLOCKED, \
             PHASE_DONE"
        );
        assert!("DESIGN".parse::<Phase>().is_err());
        assert!(" PHASE_DESIGN".parse::<Phase>().is_err());
    }

    #[test]
    fn the_phases_before_one_are_those_of_the_sequence_up_to_it() {
        assert_eq!(Backlog.earlier_in_sequence(), Some(&[][..]));
        assert_eq!(
            Design.earlier_in_sequence(),
            Some(&[Backlog, Requirements][..])
        );
        assert_eq!(Done.earlier_in_sequence(), Some(&Phase::SEQUENCE[..6]));
        assert_eq!(Blocked.earlier_in_sequence(), None);
    }

    #[test]
    fn only_done_is_terminal() {
        for phase in Phase::ALL {
            assert_eq!(phase.is_terminal(), phase == Done);
            assert_eq!(phase.is_terminal(), phase.allowed_targets().is_empty());
        }
    }
}
