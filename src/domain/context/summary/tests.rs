//! Unit tests of the summary: what it shows and in which order, what it keeps first and how it
//! cuts when the budget is short, and (as a property) that it never exceeds its budget and
//! reports its exact size.
//!
//! Contexts are aggregated or written in each test; these tests must not depend on how a stored
//! context came to be, only on what it holds.

use super::*;
use proptest::prelude::*;
use serde_json::json;

use crate::domain::context::fixtures::{design_context, TICKET};
use crate::domain::context::{
    aggregate_phase, merge_phase, ArtifactRef, GateOutcome, PhaseContext, TaskContextEntry,
};
use crate::domain::gate::GateStatus;

/// The lines every summary of [`TICKET`] opens with, when they fit.
const TICKET_HEADER: &str = "# Single sign-on (priority HIGH)\nLog in with the company IdP";

#[test]
fn a_summary_that_fits_shows_every_part_of_every_phase_newest_first() {
    let mut full = Map::new();
    merge_phase(&mut full, &design_context());
    let mut requirements = aggregate_phase(
        Phase::Requirements,
        &[],
        &[],
        Some(GateOutcome {
            gate_status: GateStatus::Failed,
            blocking_reasons: vec!["missing artifact: requirements_document".into()],
        }),
        "2024-04-30T09:00:00+00:00".into(),
    );
    requirements.decisions.push(json!({"decision": "MVP only"}));
    merge_phase(&mut full, &requirements);

    let summary = summarize(&TICKET, &full, 2000);
    assert_eq!(
        summary.text,
        "# Single sign-on (priority HIGH)\n\
         Log in with the company IdP\n\
         ## design (gate passed)\n\
         Decisions: Use Postgres for state; One queue per handler\n\
         Risks: RabbitMQ outage stalls progress\n\
         Tasks: design_architecture: Chose a hexagonal layout; create_design_doc: Wrote docs/design.md\n\
         Notes: Consider sharding later\n\
         Artifacts: design_document (docs/design.md)\n\
         ## requirements (gate failed)\n\
         Decisions: {\"decision\":\"MVP only\"}\n\
         Gate blockers: missing artifact: requirements_document"
    );
    assert_eq!(summary.tokens, count_tokens(&summary.text));
}

#[test]
fn equal_times_put_the_later_phase_first_and_unreadable_entries_are_skipped() {
    let mut full = Map::new();
    for phase in [Phase::Requirements, Phase::Testing, Phase::Design] {
        let mut context = aggregate_phase(phase, &[], &[], None, "2024-01-01T00:00:00Z".into());
        context.notes.push(json!(phase.short_name()));
        merge_phase(&mut full, &context);
    }
    full.insert("broken_phase".into(), json!("not an object"));
    full.insert("odd".into(), json!({"decisions": "still readable"}));
    let text = summarize(&TICKET, &full, 2000).text;
    let headings: Vec<_> = text.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(
        headings,
        ["## testing", "## design", "## requirements", "## odd"]
    );
    assert!(text.contains("Decisions: still readable"));
}

#[test]
fn differently_written_times_order_by_the_instant_they_name() {
    let instant = |text: &str| {
        parse_rfc3339(text).map(|time| (time.timestamp(), time.timestamp_subsec_nanos()))
    };
    assert!(parse_rfc3339("2024-01-01T00:00:00.5Z") > parse_rfc3339("2024-01-01T00:00:00Z"));
    assert!(parse_rfc3339("2024-01-01T01:00:00+02:00") < parse_rfc3339("2024-01-01T00:00:00Z"));
    assert_eq!(
        instant("2024-01-01T02:00:00+02:00"),
        instant("2024-01-01T00:00:00Z")
    );
    assert_eq!(
        instant(" 2024-01-01 00:00:00.000z\n"),
        instant("2024-01-01T00:00:00Z")
    );
    assert_eq!(instant("1970-01-01T00:00:01Z"), Some((1, 0)));
    assert_eq!(instant("2000-03-01T00:00:00Z"), Some((951_868_800, 0)));
    assert_eq!(parse_rfc3339("yesterday"), None);
    assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
    assert_eq!(parse_rfc3339("2024-02-30T00:00:00Z"), None);
}

/// A ticket whose notes and artifacts are far larger than any budget.
fn bulky_context() -> Map<String, Value> {
    let mut full = Map::new();
    for (phase, at) in [
        (Phase::Requirements, "2024-01-01T00:00:00Z"),
        (Phase::Design, "2024-01-02T00:00:00Z"),
    ] {
        let mut context = aggregate_phase(phase, &[], &[], None, at.into());
        context
            .decisions
            .push(json!(format!("{} decision", phase.short_name())));
        context
            .risks
            .push(json!(format!("{} risk", phase.short_name())));
        for n in 0..300 {
            context
                .notes
                .push(json!(format!("note {n} about something long-winded")));
            context.artifacts.push(ArtifactRef {
                artifact_type: format!("artifact_{n}"),
                artifact_path: Some(format!("docs/{n}.md")),
            });
        }
        merge_phase(&mut full, &context);
    }
    full
}

#[test]
fn decisions_and_risks_survive_when_notes_are_cut() {
    let summary = summarize(&TICKET, &bulky_context(), 120);
    assert!(summary.tokens <= 120);
    assert!(summary.text.starts_with(TICKET_HEADER), "{}", summary.text);
    assert_eq!(summary.tokens, count_tokens(&summary.text));
    for kept in [
        "design decision",
        "design risk",
        "requirements decision",
        "requirements risk",
    ] {
        assert!(
            summary.text.contains(kept),
            "{kept} missing:\n{}",
            summary.text
        );
    }
    assert!(!summary.text.contains("note 299"));
    let design = summary.text.find("## design").unwrap();
    let requirements = summary.text.find("## requirements").unwrap();
    assert!(
        design < requirements,
        "newest phase first:\n{}",
        summary.text
    );
    assert!(
        summary.text.ends_with("more items omitted)"),
        "{}",
        summary.text
    );
}

#[test]
fn a_large_context_is_summarized_within_budget() {
    let full = bulky_context();
    let summary = summarize(&TICKET, &full, 2000);
    assert!(summary.tokens <= 2000);
    assert!(summary.text.starts_with(TICKET_HEADER), "{}", summary.text);
    assert!(summary.text.contains("design decision"), "{}", summary.text);
    assert!(
        summary.text.ends_with("more items omitted)"),
        "{}",
        summary.text
    );
}

#[test]
fn only_the_newest_entries_of_a_long_line_are_considered_and_the_rest_counted_as_omitted() {
    let artifacts: Vec<ArtifactRef> = (0..300)
        .map(|index| ArtifactRef {
            artifact_type: format!("report_{index}"),
            artifact_path: None,
        })
        .collect();
    let context = aggregate_phase(Phase::Testing, &[], &artifacts, None, "t".into());
    let mut full = Map::new();
    merge_phase(&mut full, &context);
    let summary = summarize(&TICKET, &full, 2000);
    assert!(summary.text.contains("report_299"), "{}", summary.text);
    assert!(!summary.text.contains("report_0;"), "{}", summary.text);
    assert!(
        summary.text.contains(&format!(
            "{} more items omitted",
            300 - MAX_ENTRIES_PER_LINE
        )),
        "{}",
        summary.text
    );
}

#[test]
fn a_single_entry_longer_than_the_budget_is_truncated_with_an_ellipsis() {
    let mut context = aggregate_phase(Phase::Design, &[], &[], None, "t".into());
    context.decisions.push(json!("word ".repeat(500)));
    let mut full = Map::new();
    merge_phase(&mut full, &context);
    let ticket = TicketBrief {
        title: "T",
        priority: Priority::Low,
        description: "",
    };
    let summary = summarize(&ticket, &full, 40);
    assert!(summary.tokens <= 40);
    assert!(summary.tokens >= 25, "{}", summary.tokens);
    assert!(summary
        .text
        .starts_with("# T (priority LOW)\n## design\nDecisions: word word"));
    assert!(summary.text.contains('…'), "{}", summary.text);
}

#[test]
fn a_zero_budget_gives_an_empty_summary_and_any_other_opens_with_the_ticket() {
    let summary = summarize(&TICKET, &bulky_context(), 0);
    assert_eq!(
        summary,
        Summary {
            text: String::new(),
            tokens: 0
        }
    );
    for max_tokens in 4..40 {
        let summary = summarize(&TICKET, &Map::new(), max_tokens);
        assert!(summary.text.starts_with('#'), "{max_tokens}: {summary:?}");
        assert!(summary.tokens <= max_tokens, "{max_tokens}: {summary:?}");
    }
}

#[test]
fn a_summary_with_no_phase_content_is_the_ticket_itself() {
    // Leaving BACKLOG aggregates a phase with nothing in it.
    let mut full = Map::new();
    merge_phase(
        &mut full,
        &aggregate_phase(Phase::Backlog, &[], &[], None, "t".into()),
    );
    let summary = summarize(&TICKET, &full, 2000);
    assert_eq!(summary.text, TICKET_HEADER);
    assert_eq!(summary.tokens, count_tokens(TICKET_HEADER));
    assert!(summary.tokens > 0);

    let untold = TicketBrief {
        description: " \n ",
        ..TICKET
    };
    assert_eq!(
        summarize(&untold, &full, 2000).text,
        "# Single sign-on (priority HIGH)"
    );
}

#[test]
fn a_description_is_cut_to_what_the_phases_leave_and_never_crowds_them_out() {
    let description = "The whole specification, pasted in. ".repeat(2000);
    let ticket = TicketBrief {
        description: &description,
        ..TICKET
    };

    // Nothing else to show: the description fills the budget.
    let alone = summarize(&ticket, &Map::new(), 300);
    assert!(alone.tokens <= 300);
    assert!(alone.tokens >= 280, "{}", alone.tokens);
    let lines: Vec<&str> = alone.text.lines().collect();
    assert_eq!(lines.len(), 2, "{}", alone.text);
    assert_eq!(lines[0], "# Single sign-on (priority HIGH)");
    assert!(lines[1].starts_with("The whole specification, pasted in. The whole"));
    assert!(lines[1].ends_with('…'), "{}", lines[1]);

    // Phases to show as well: they keep at least half the room, decisions and risks first.
    let shared = summarize(&ticket, &bulky_context(), 300);
    assert!(shared.tokens <= 300);
    assert!(shared
        .text
        .starts_with("# Single sign-on (priority HIGH)\nThe whole specification"));
    for kept in [
        "design decision",
        "design risk",
        "requirements decision",
        "requirements risk",
    ] {
        assert!(
            shared.text.contains(kept),
            "{kept} missing:\n{}",
            shared.text
        );
    }
    let description_line = shared.text.lines().nth(1).unwrap();
    assert!(description_line.ends_with('…'), "{description_line}");
    assert!(count_tokens(description_line) >= 100, "{}", shared.text);
}

#[test]
fn a_title_too_long_for_the_budget_is_cut_and_keeps_its_priority() {
    let title = "An extremely long title that goes on and on ".repeat(10);
    let ticket = TicketBrief {
        title: &title,
        ..TICKET
    };
    let summary = summarize(&ticket, &bulky_context(), 16);
    assert!(summary.tokens <= 16);
    assert!(
        summary.text.starts_with("# An extremely long"),
        "{}",
        summary.text
    );
    assert!(
        summary.text.ends_with("… (priority HIGH)"),
        "{}",
        summary.text
    );

    // Too small for a few tokens of title beside the priority: the line is cut instead.
    let summary = summarize(&ticket, &bulky_context(), 5);
    assert!(summary.tokens <= 5);
    assert!(summary.text.starts_with("# An"), "{}", summary.text);
    assert!(summary.text.ends_with('…'), "{}", summary.text);
}

#[test]
fn entries_that_read_alike_in_a_stored_phase_are_summarized_once() {
    // Duplicates stored before aggregation kept entries once, and entries that differ only
    // in whitespace, which the summary collapses.
    let mut context = aggregate_phase(Phase::Design, &[], &[], None, "t".into());
    context.decisions = vec![
        json!("Use Postgres"),
        json!("One queue"),
        json!("Use  Postgres\n"),
        json!("One queue"),
    ];
    context.risks = vec![json!("Outage"), json!("Outage")];
    context.notes = vec![json!("Later"), json!(" Later ")];
    let mut full = Map::new();
    merge_phase(&mut full, &context);
    let text = summarize(&TICKET, &full, 2000).text;
    assert_eq!(
        text,
        format!(
            "{TICKET_HEADER}\n## design\nDecisions: Use Postgres; One queue\nRisks: Outage\nNotes: Later"
        )
    );
}

#[test]
fn entries_are_put_on_one_line_and_runaway_runs_are_cut() {
    assert_eq!(clean("  a\n\n b\r\n\tc  ", 100), "a b c");
    let long_word = format!("{} tail", "x".repeat(1000));
    assert_eq!(
        clean(&long_word, 10_000),
        format!("{}… tail", "x".repeat(RUN_CHARS))
    );
    assert_eq!(clean("abcdef", 3), "abc…");
    assert_eq!(clean(" \n ", 3), "");
}

#[test]
fn pathological_input_neither_panics_nor_stalls_the_summary() {
    let mut context = aggregate_phase(Phase::Design, &[], &[], None, "t".into());
    context.decisions.push(json!("x".repeat(1_000_000)));
    context.notes.push(json!(" ".repeat(1_000_000)));
    context.risks.push(json!("lorem ipsum ".repeat(50_000)));
    let mut full = Map::new();
    merge_phase(&mut full, &context);
    let started = std::time::Instant::now();
    let summary = summarize(&TICKET, &full, 2000);
    assert!(summary.tokens <= 2000);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // Counting a long unbroken run directly works too (in pieces).
    assert!(count_tokens(&"y".repeat(100_000)) > 0);
}

fn arbitrary_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "(?s).{0,24}",
        1 => "(?s).{0,300}",
        1 => "[ \n\t;,.a-z…]{0,60}",
    ]
}

prop_compose! {
    fn arbitrary_phase_context()(
        phase in proptest::sample::select(Phase::ALL.to_vec()),
        decisions in proptest::collection::vec(arbitrary_text(), 0..4),
        risks in proptest::collection::vec(arbitrary_text(), 0..3),
        notes in proptest::collection::vec(arbitrary_text(), 0..4),
        tasks in proptest::collection::vec(
            (arbitrary_text(), proptest::option::of(arbitrary_text())), 0..4),
        artifacts in proptest::collection::vec(
            (arbitrary_text(), proptest::option::of(arbitrary_text())), 0..6),
        gate in proptest::option::of((
            proptest::sample::select(vec![
                GateStatus::Passed, GateStatus::Failed, GateStatus::Pending]),
            proptest::collection::vec(arbitrary_text(), 0..3))),
        aggregated_at in prop_oneof![
            "2024-0[1-9]-[12][0-9]T[01][0-9]:[0-5][0-9]:[0-5][0-9]Z",
            arbitrary_text(),
        ],
    ) -> PhaseContext {
        PhaseContext {
            phase_id: phase,
            tasks: tasks
                .into_iter()
                .map(|(task_type, summary)| TaskContextEntry {
                    task_type,
                    summary,
                    outputs: None,
                })
                .collect(),
            decisions: decisions.into_iter().map(Value::String).collect(),
            risks: risks.into_iter().map(Value::String).collect(),
            notes: notes.into_iter().map(Value::String).collect(),
            artifacts: artifacts
                .into_iter()
                .map(|(artifact_type, artifact_path)| ArtifactRef {
                    artifact_type,
                    artifact_path,
                })
                .collect(),
            gate: gate.map(|(gate_status, blocking_reasons)| GateOutcome {
                gate_status,
                blocking_reasons,
            }),
            aggregated_at,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_summary_never_exceeds_its_budget_and_reports_its_exact_size(
        contexts in proptest::collection::vec(arbitrary_phase_context(), 0..6),
        title in prop_oneof![4 => arbitrary_text(), 1 => "(?s).{400,500}"],
        priority in proptest::sample::select(vec![
            Priority::Low, Priority::Medium, Priority::High, Priority::Critical]),
        description in prop_oneof![
            3 => arbitrary_text(),
            1 => "[a-z ]{1000,3000}",
        ],
        max_tokens in 0usize..300,
    ) {
        let mut full = Map::new();
        for context in &contexts {
            merge_phase(&mut full, context);
        }
        let ticket = TicketBrief {
            title: &title,
            priority,
            description: &description,
        };
        let summary = summarize(&ticket, &full, max_tokens);
        prop_assert!(summary.tokens <= max_tokens, "{} > {}", summary.tokens, max_tokens);
        prop_assert_eq!(summary.tokens, count_tokens(&summary.text));
        // It opens with the ticket whenever the budget holds a token or two of it.
        prop_assert!(max_tokens < 4 || summary.text.starts_with('#'), "{:?}", summary.text);
    }
}
