//! Discovery over HTTP against the real Postgres (docs/protocol.md, "Discovery"): the workflow
//! definition, a ticket's valid transitions and the transition dry run, which must say exactly
//! what a real transition then does and change nothing; the listings of tickets and tasks,
//! their filters, pages and cursors; and the context an agent entering a phase reads.
//!
//! Every test serves the API in-process without a worker: writes over HTTP do their whole work
//! in their transaction, and the events they cause wait in the outbox, where a test can see
//! that a read published nothing.

use std::collections::{BTreeMap, BTreeSet};

use phaseflow::domain::{Phase, PhaseRules};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::http::{assert_invalid, error_of, members, send, strings, Api};
use crate::common::{Event, Rejected, Requests, TestApp};

/// Asks what a transition of `ticket` to `to_phase` would do (its valid transition, when the
/// table offers the move, and the dry run), then makes it for real and asserts that it does
/// exactly that: moved when allowed, else rejected with the same code and reasons, and a
/// `gate_not_met` with the same gate status and missing artifacts. Returns whether it moved.
async fn agree(api: &Api, app: &TestApp, ticket: &str, to_phase: &str) -> bool {
    let overview = api.read(&format!("/api/v1/tickets/{ticket}")).await;
    let listed = overview["valid_transitions"]
        .as_array()
        .expect("valid_transitions")
        .iter()
        .find(|transition| transition["to_phase"] == to_phase)
        .cloned();
    let dry = api
        .read(&format!("/api/v1/tickets/{ticket}/transitions/{to_phase}"))
        .await;
    assert_eq!(dry["ticket_id"], ticket);
    assert_eq!(dry["from_phase"], overview["phase_id"]);
    assert_eq!(dry["to_phase"], to_phase);
    let allowed = dry["allowed"].as_bool().expect("allowed");
    assert_eq!(allowed, dry["code"].is_null(), "{dry}");
    if let Some(listed) = &listed {
        assert_eq!(listed["allowed_now"], dry["allowed"], "{listed} vs {dry}");
        assert_eq!(listed["reasons"], dry["reasons"], "{listed} vs {dry}");
        assert_eq!(listed["gated"], dry["gated"], "{listed} vs {dry}");
    } else {
        assert!(
            !allowed,
            "a move missing from valid_transitions is refused: {dry}"
        );
    }

    let rejections_before = rejections(app, ticket).await.len();
    let (status, answer) = api.transition(ticket, to_phase).await;
    if allowed {
        assert_eq!(status, StatusCode::OK, "the dry run allowed it: {answer}");
        assert_eq!(answer["current_phase"], to_phase);
        return true;
    }
    let (code, reasons) = error_of(&answer);
    assert_eq!(json!(code), dry["code"], "{answer} vs {dry}");
    assert_eq!(json!(reasons), dry["reasons"], "{answer} vs {dry}");
    let expected_status = match code.as_str() {
        "gate_not_met" => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::CONFLICT,
    };
    assert_eq!(status, expected_status, "{answer}");
    let rejected = rejections(app, ticket).await;
    assert_eq!(rejected.len(), rejections_before + 1);
    let rejection = rejected.last().expect("the rejection event");
    if code == "gate_not_met" {
        assert_eq!(
            json!(rejection.data.gate_status),
            dry["gate_status"],
            "{rejection} vs {dry}"
        );
        assert_eq!(
            json!(rejection.data.missing_artifacts),
            dry["missing_artifacts"],
            "{rejection} vs {dry}"
        );
    } else {
        assert!(!rejection.has_member("gate_status"), "{rejection}");
    }
    false
}

/// The `phase.transition.rejected` events of a ticket waiting in the outbox, oldest first.
async fn rejections(app: &TestApp, ticket: &str) -> Vec<Rejected> {
    let events: Vec<Value> = sqlx::query_scalar(
        "select convert_from(body, 'UTF8')::jsonb from outbox where ticket_id = $1::uuid \
         and event_type = 'phase.transition.rejected' order by ticket_seq",
    )
    .bind(ticket)
    .fetch_all(&app.pool)
    .await
    .expect("outbox rows");
    events
        .into_iter()
        .map(|event| Event::from_json(event).typed())
        .collect()
}

/// The number of rows of every table of the schema.
async fn row_counts(app: &TestApp) -> BTreeMap<String, i64> {
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables \
         where table_schema = 'public' and table_type = 'BASE TABLE' order by 1",
    )
    .fetch_all(&app.pool)
    .await
    .expect("the tables");
    assert!(tables.len() >= 8, "{tables:?}");
    let mut counts = BTreeMap::new();
    for table in tables {
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select count(*) from \"{table}\""
        )))
        .fetch_one(&app.pool)
        .await
        .expect("a count");
        counts.insert(table, count);
    }
    counts
}

/// Every page of a listing, following `next_cursor`; each page's items under `member`.
async fn all_pages(api: &Api, path: &str, member: &str) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(cursor) => format!("{path}{separator}cursor={cursor}"),
            None => path.to_owned(),
        };
        let page = api.read(&url).await;
        pages.push(page[member].as_array().expect("items").clone());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return pages,
        }
        assert!(pages.len() < 1000, "the pages never end");
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workflow_lists_every_phase_with_its_moves_gates_and_guidance() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let workflow = api.read("/api/v1/workflow").await;
    let phases = workflow["phases"].as_array().expect("phases");
    assert_eq!(
        members(&workflow["phases"], "phase_id"),
        [
            "PHASE_BACKLOG",
            "PHASE_REQUIREMENTS",
            "PHASE_DESIGN",
            "PHASE_IMPLEMENTATION",
            "PHASE_TESTING",
            "PHASE_DEPLOYMENT",
            "PHASE_DONE",
            "PHASE_BLOCKED"
        ]
    );
    let definition = app.settings.workflow_definition().expect("the definition");
    let by_id: BTreeMap<&str, &Value> = phases
        .iter()
        .map(|phase| (phase["phase_id"].as_str().expect("phase_id"), phase))
        .collect();
    for phase in phaseflow::domain::Phase::ALL {
        let shown = by_id[phase.as_str()];
        let working = !matches!(
            phase,
            phaseflow::domain::Phase::Backlog
                | phaseflow::domain::Phase::Blocked
                | phaseflow::domain::Phase::Done
        );
        assert_eq!(
            shown["guidance"],
            serde_json::to_value(definition.guidance(phase)).expect("guidance serializes"),
            "{phase}"
        );
        assert_eq!(!shown["guidance"].is_null(), working, "{phase}: {shown}");
        if working {
            for key in ["prompt", "done_definition"] {
                assert!(
                    shown["guidance"][key]
                        .as_str()
                        .is_some_and(|t| !t.is_empty()),
                    "{phase}: {key}"
                );
            }
            assert!(!strings(&shown["guidance"]["expected_outputs"]).is_empty());
        }
        let targets: Vec<&str> = phase.allowed_targets().iter().map(|p| p.as_str()).collect();
        assert_eq!(
            members(&shown["transitions"], "to_phase"),
            targets,
            "{phase}"
        );
    }

    let transition = |from: &str, to: &str| -> Value {
        by_id[from]["transitions"]
            .as_array()
            .expect("transitions")
            .iter()
            .find(|move_| move_["to_phase"] == to)
            .cloned()
            .unwrap_or_else(|| panic!("{from} -> {to} listed"))
    };
    // BACKLOG has no gate, so leaving it checks none
    let leave_backlog = transition("PHASE_BACKLOG", "PHASE_REQUIREMENTS");
    assert_eq!(leave_backlog["gated"], false, "{leave_backlog}");
    assert_eq!(leave_backlog["kind"], "forward");
    let forward = transition("PHASE_IMPLEMENTATION", "PHASE_TESTING");
    assert_eq!(forward["gated"], true);
    assert_eq!(forward["gate_phase"], "PHASE_IMPLEMENTATION");
    let regression = transition("PHASE_TESTING", "PHASE_IMPLEMENTATION");
    assert_eq!(regression["kind"], "regression");
    assert_eq!(regression["gated"], false);
    assert_eq!(transition("PHASE_DESIGN", "PHASE_BLOCKED")["gated"], false);
    // out of BLOCKED, by where the ticket was blocked from
    let unblock = transition("PHASE_BLOCKED", "PHASE_DESIGN");
    assert_eq!(unblock["kind"], "unblock");
    assert_eq!(unblock["gated"], true);
    assert_eq!(unblock["gate_phase"], "PHASE_REQUIREMENTS");
    assert_eq!(
        unblock["from_blocked"],
        json!({
            "ungated": ["PHASE_DESIGN", "PHASE_IMPLEMENTATION", "PHASE_TESTING", "PHASE_DEPLOYMENT"],
            "gated": ["PHASE_REQUIREMENTS"],
            "refused": []
        })
    );
    let far = transition("PHASE_BLOCKED", "PHASE_TESTING");
    assert_eq!(
        far["from_blocked"]["refused"],
        json!(["PHASE_REQUIREMENTS", "PHASE_DESIGN"])
    );
    assert!(by_id["PHASE_DONE"]["transitions"]
        .as_array()
        .expect("transitions")
        .is_empty());

    // templates, re-entry templates and gates in words
    let implementation = by_id["PHASE_IMPLEMENTATION"];
    assert_eq!(
        members(&implementation["templates"], "task_type"),
        ["implement_feature", "write_unit_tests"]
    );
    assert_eq!(
        implementation["reentry_templates"][0]["task_type"],
        "fix_failing_tests"
    );
    assert_eq!(
        implementation["gate"]["required_artifacts"],
        json!(["code_changes", "test_coverage"])
    );
    let rules: Vec<&str> = implementation["gate"]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|rule| rule["rule"].as_str().expect("rule in words"))
        .collect();
    assert_eq!(
        rules,
        [
            "test_coverage.percentage ≥ 80",
            "code_changes.has_tests is true"
        ]
    );
    assert_eq!(
        by_id["PHASE_TESTING"]["gate"]["rules"][0]["regression"],
        true
    );
    assert_eq!(
        by_id["PHASE_DESIGN"]["templates"][1]["after"],
        json!(["design_architecture"])
    );
    for phase in ["PHASE_BACKLOG", "PHASE_BLOCKED", "PHASE_DONE"] {
        assert!(by_id[phase]["gate"].is_null(), "{phase}");
    }

    let (status, _) = send(api.http.get(format!("{}/api/v1/workflow", api.base))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "it needs a token");
    api.stop().await;
    app.shutdown().await;
}

/// The ticket's `valid_transitions`, their target phases.
fn targets(overview: &Value) -> Vec<String> {
    members(&overview["valid_transitions"], "to_phase")
}

/// A ticket put into `phase` that moves only when asked, and the API over its app.
async fn manual_ticket_in(phase: Phase) -> (TestApp, Api, String) {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let ticket = app.manual_ticket_in(phase).await.ticket;
    (app, api, ticket)
}

/// Completes every open REQUIREMENTS task with a requirements document of `length`.
async fn complete_requirements_with_a_document_of(api: &Api, ticket: &str, length: u32) {
    for task in api.open_tasks(ticket, "PHASE_REQUIREMENTS").await {
        let artifacts = json!([{"artifact_type": "requirements_document",
            "artifact_content": {"length": length, "sections": ["scope", "acceptance_criteria"]}}]);
        api.complete(&task, json!({"artifacts": artifacts})).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_ticket_may_move_only_to_requirements_and_the_dry_run_says_so() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let ticket = api
        .create_ticket(json!({"title": "Dry runs", "auto_advance": false}))
        .await;

    let overview = api.read(&format!("/api/v1/tickets/{ticket}")).await;

    assert_eq!(targets(&overview), ["PHASE_REQUIREMENTS"]);
    assert_eq!(
        overview["valid_transitions"][0],
        json!({"to_phase": "PHASE_REQUIREMENTS", "gated": false, "allowed_now": true, "reasons": []})
    );
    assert!(!agree(&api, &app, &ticket, "PHASE_DESIGN").await);
    assert!(agree(&api, &app, &ticket, "PHASE_REQUIREMENTS").await);
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_open_tasks_the_dry_run_says_the_gate_is_pending_and_why() {
    let (app, api, ticket) = manual_ticket_in(Phase::Requirements).await;

    let overview = api.read(&format!("/api/v1/tickets/{ticket}")).await;
    let dry = api.dry_run(&ticket, "PHASE_DESIGN").await;

    assert_eq!(targets(&overview), ["PHASE_DESIGN", "PHASE_BLOCKED"]);
    assert_eq!(dry["code"], "gate_not_met", "{dry}");
    assert_eq!(dry["gate_status"], "pending");
    assert_eq!(dry["gate_phase"], "PHASE_REQUIREMENTS");
    assert_eq!(dry["missing_artifacts"], json!(["requirements_document"]));
    assert!(strings(&dry["reasons"]).contains(&"task analyze_requirements is pending".to_owned()));
    assert!(!agree(&api, &app, &ticket, "PHASE_DESIGN").await);
    assert!(!agree(&api, &app, &ticket, "PHASE_IMPLEMENTATION").await);
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_task_done_but_a_short_document_the_dry_run_says_the_gate_fails() {
    let (app, api, ticket) = manual_ticket_in(Phase::Requirements).await;
    complete_requirements_with_a_document_of(&api, &ticket, 120).await;

    let dry = api.dry_run(&ticket, "PHASE_DESIGN").await;

    assert_eq!(dry["gate_status"], "failed", "{dry}");
    assert_eq!(
        dry["reasons"],
        json!(["requirements_document: length 120 is below 500"])
    );
    assert!(!agree(&api, &app, &ticket, "PHASE_DESIGN").await);
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_blocked_from_a_phase_whose_gate_passes_may_go_on_through_that_gate_only() {
    let (app, api, ticket) = manual_ticket_in(Phase::Requirements).await;
    complete_requirements_with_a_document_of(&api, &ticket, 120).await;
    let (status, body) = api
        .post(
            &format!("/api/v1/tickets/{ticket}/artifacts"),
            json!({"artifact_type": "requirements_document",
                   "artifact_content": {"length": 800, "sections": ["scope", "acceptance_criteria"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let overview = api.read(&format!("/api/v1/tickets/{ticket}")).await;
    assert_eq!(
        overview["valid_transitions"][0],
        json!({"to_phase": "PHASE_DESIGN", "gated": true, "allowed_now": true, "reasons": []})
    );

    assert!(agree(&api, &app, &ticket, "PHASE_BLOCKED").await);

    let overview = api.read(&format!("/api/v1/tickets/{ticket}")).await;
    assert_eq!(
        targets(&overview),
        [
            "PHASE_REQUIREMENTS",
            "PHASE_DESIGN",
            "PHASE_IMPLEMENTATION",
            "PHASE_TESTING"
        ]
    );
    let dry = api.dry_run(&ticket, "PHASE_IMPLEMENTATION").await;
    assert_eq!(dry["code"], "invalid_transition", "{dry}");
    assert!(strings(&dry["reasons"])[0].contains("blocked from PHASE_REQUIREMENTS"));
    assert!(!agree(&api, &app, &ticket, "PHASE_IMPLEMENTATION").await);
    assert!(!agree(&api, &app, &ticket, "PHASE_TESTING").await);
    let dry = api.dry_run(&ticket, "PHASE_DESIGN").await;
    assert_eq!(dry["gated"], true, "{dry}");
    assert_eq!(dry["gate_status"], "passed");
    assert!(agree(&api, &app, &ticket, "PHASE_DESIGN").await);
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_blocked_from_a_phase_with_open_tasks_meets_that_phase_s_gate() {
    let (app, api, ticket) = manual_ticket_in(Phase::Design).await;

    assert!(agree(&api, &app, &ticket, "PHASE_BLOCKED").await);

    let dry = api.dry_run(&ticket, "PHASE_IMPLEMENTATION").await;
    assert_eq!(dry["code"], "gate_not_met", "{dry}");
    assert_eq!(dry["gate_phase"], "PHASE_DESIGN");
    assert!(!agree(&api, &app, &ticket, "PHASE_IMPLEMENTATION").await);
    assert!(!agree(&api, &app, &ticket, "PHASE_TESTING").await);
    let dry = api.dry_run(&ticket, "PHASE_REQUIREMENTS").await;
    assert_eq!(dry["gated"], false, "returning to an earlier phase: {dry}");
    assert!(agree(&api, &app, &ticket, "PHASE_REQUIREMENTS").await);
    // back in REQUIREMENTS: the visit has new tasks, so its gate is pending
    let dry = api.dry_run(&ticket, "PHASE_DESIGN").await;
    assert_eq!(dry["gate_status"], "pending", "{dry}");
    assert!(!agree(&api, &app, &ticket, "PHASE_DESIGN").await);
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_in_done_may_move_nowhere() {
    let (app, api, done) = manual_ticket_in(Phase::Done).await;

    let overview = api.read(&format!("/api/v1/tickets/{done}")).await;

    assert_eq!(overview["phase_id"], "PHASE_DONE", "{overview}");
    assert_eq!(overview["valid_transitions"], json!([]));
    let dry = api.dry_run(&done, "PHASE_BLOCKED").await;
    assert_eq!(dry["code"], "invalid_transition");
    assert!(strings(&dry["reasons"])[0].contains("terminal"));
    assert!(!agree(&api, &app, &done, "PHASE_BLOCKED").await);
    assert!(!agree(&api, &app, &done, "PHASE_REQUIREMENTS").await);
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_reads_store_nothing_and_publish_nothing() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let ticket = api
        .create_ticket(json!({"title": "Look, don't touch"}))
        .await;
    api.moved(&ticket, "PHASE_REQUIREMENTS").await;
    let task = &api.open_tasks(&ticket, "PHASE_REQUIREMENTS").await[0];
    api.complete(task, json!({"summary": "analysed"})).await;

    let before = row_counts(&app).await;
    assert!(
        before["outbox"] > 0,
        "the writes' events wait in the outbox"
    );
    let gate_results: i64 = sqlx::query_scalar("select count(*) from phase_gate_results")
        .fetch_one(&app.pool)
        .await
        .expect("a count");
    for phase in phaseflow::domain::Phase::ALL {
        let check = api
            .read(&format!("/api/v1/tickets/{ticket}/transitions/{phase}"))
            .await;
        if phase.as_str() == "PHASE_DESIGN" {
            assert_eq!(check["gated"], true, "a gate was judged: {check}");
            assert_eq!(check["gate_status"], "pending");
        }
    }
    for path in [
        format!("/api/v1/tickets/{ticket}"),
        "/api/v1/tickets".to_owned(),
        "/api/v1/tickets?phase=PHASE_REQUIREMENTS&limit=1".to_owned(),
        "/api/v1/tasks?claimable=true".to_owned(),
        "/api/v1/workflow".to_owned(),
        format!("/api/v1/tickets/{ticket}/context?for_phase=PHASE_DESIGN"),
    ] {
        api.read(&path).await;
    }
    assert_eq!(row_counts(&app).await, before, "row counts changed");
    let after: i64 = sqlx::query_scalar("select count(*) from phase_gate_results")
        .fetch_one(&app.pool)
        .await
        .expect("a count");
    assert_eq!(after, gate_results, "no gate result was stored");

    // a real transition would have stored a gate result and an event: the counts can move
    let (status, _) = api.transition(&ticket, "PHASE_DESIGN").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let changed = row_counts(&app).await;
    assert_eq!(
        changed["phase_gate_results"],
        before["phase_gate_results"] + 1
    );
    assert_eq!(changed["outbox"], before["outbox"] + 1);

    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_names_a_bad_phase_or_an_unknown_ticket() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let ticket = api.create_ticket(json!({"title": "Paths"})).await;

    let (status, body) = api
        .get(&format!("/api/v1/tickets/{ticket}/transitions/PHASE_DESGN"))
        .await;
    assert_invalid(status, &body, "to_phase");
    let (status, body) = api
        .get(&format!(
            "/api/v1/tickets/{}/transitions/PHASE_DESIGN",
            Uuid::new_v4()
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(error_of(&body).0, "ticket_not_found");
    let (status, body) = api
        .get("/api/v1/tickets/not-a-uuid/transitions/PHASE_DESIGN")
        .await;
    assert_invalid(status, &body, "ticket_id");
    let (status, body) = api
        .get(&format!("/api/v1/tickets/{}", Uuid::new_v4()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_pages_repeat_nothing_while_tickets_change_between_them() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let mut created = Vec::new();
    for index in 0..60 {
        created.push(
            api.create_ticket(json!({"title": format!("Ticket {index}")}))
                .await,
        );
    }

    let mut seen: Vec<String> = Vec::new();
    let mut changed: BTreeSet<String> = BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/api/v1/tickets?limit=7&cursor={cursor}"),
            None => "/api/v1/tickets?limit=7".to_owned(),
        };
        let page = api.read(&path).await;
        let tickets = page["tickets"].as_array().expect("tickets");
        assert!(tickets.len() <= 7, "{page}");
        let times: Vec<&str> = tickets
            .iter()
            .map(|ticket| ticket["updated_at"].as_str().expect("updated_at"))
            .collect();
        assert!(
            times.windows(2).all(|pair| pair[0] >= pair[1]),
            "most recently updated first: {times:?}"
        );
        seen.extend(ids(tickets));
        pages += 1;
        // between pages: tickets already listed and tickets not listed yet change
        let unseen: Vec<String> = created
            .iter()
            .filter(|id| !seen.contains(id) && !changed.contains(*id))
            .cloned()
            .collect();
        let to_change: Vec<String> = match pages {
            2 => seen[..3]
                .iter()
                .chain(&unseen[unseen.len() - 3..])
                .cloned()
                .collect(),
            4 => unseen[unseen.len() - 2..].to_vec(),
            _ => Vec::new(),
        };
        for id in to_change {
            api.moved(&id, "PHASE_REQUIREMENTS").await;
            changed.insert(id);
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(changed.len(), 8);
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a ticket was listed twice");
    for id in &created {
        if !changed.contains(id) {
            assert_eq!(
                seen.iter().filter(|listed| *listed == id).count(),
                1,
                "{id} was not changed and is listed once"
            );
        }
    }
    assert!(pages >= 8, "{pages} pages of 7 for 60 tickets");

    // from the start again: the changed tickets come first, and a listed ticket is what
    // GET /api/v1/tickets/{ticket_id} shows
    let first = api.read("/api/v1/tickets?limit=8").await;
    let front: BTreeSet<String> = ids(first["tickets"].as_array().expect("tickets"))
        .into_iter()
        .collect();
    assert_eq!(front, changed);
    for listed in first["tickets"].as_array().expect("tickets").iter().take(2) {
        let id = listed["id"].as_str().expect("id");
        assert_eq!(listed, &api.read(&format!("/api/v1/tickets/{id}")).await);
        assert_eq!(listed["valid_transitions"][0]["to_phase"], "PHASE_DESIGN");
    }

    // the default page is 50, and the last page says so
    let pages = all_pages(&api, "/api/v1/tickets", "tickets").await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [50, 10]);
    let everything: BTreeSet<String> = pages.iter().flat_map(|page| ids(page)).collect();
    assert_eq!(everything, created.iter().cloned().collect());

    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_filter_and_refuse_bad_parameters_by_name() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let mut by_priority: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (index, priority) in ["HIGH", "LOW", "HIGH", "MEDIUM", "HIGH", "LOW"]
        .into_iter()
        .enumerate()
    {
        let id = api
            .create_ticket(json!({"title": format!("Filtered {index}"), "priority": priority}))
            .await;
        by_priority.entry(priority).or_default().push(id);
    }
    let moved = [
        by_priority["HIGH"][0].clone(),
        by_priority["LOW"][1].clone(),
    ];
    for id in &moved {
        api.moved(id, "PHASE_REQUIREMENTS").await;
    }
    let listed = |page: &Value| -> BTreeSet<String> {
        ids(page["tickets"].as_array().expect("tickets"))
            .into_iter()
            .collect()
    };

    let page = api.read("/api/v1/tickets?phase=PHASE_REQUIREMENTS").await;
    assert_eq!(listed(&page), moved.iter().cloned().collect());
    assert_eq!(page["next_cursor"], Value::Null);
    let page = api.read("/api/v1/tickets?priority=HIGH").await;
    assert_eq!(listed(&page), by_priority["HIGH"].iter().cloned().collect());
    let page = api
        .read("/api/v1/tickets?priority=LOW&phase=PHASE_BACKLOG")
        .await;
    assert_eq!(
        listed(&page),
        BTreeSet::from([by_priority["LOW"][0].clone()])
    );
    // an empty value is refused like any other bad one
    let (status, body) = api.get("/api/v1/tickets?phase=&priority=").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["reasons"].as_array().map(Vec::len), Some(2));
    // filtered pages follow their filter
    let pages = all_pages(&api, "/api/v1/tickets?priority=HIGH&limit=2", "tickets").await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 1]);

    let task_of_moved = api.open_tasks(&moved[0], "PHASE_REQUIREMENTS").await;
    let ticket_cursor = api.read("/api/v1/tickets?limit=1").await["next_cursor"]
        .as_str()
        .expect("a cursor")
        .to_owned();
    for (path, parameter) in [
        ("/api/v1/tickets?phase=PHASE_NOPE", "phase"),
        ("/api/v1/tickets?phase=design", "phase"),
        ("/api/v1/tickets?priority=URGENT", "priority"),
        ("/api/v1/tickets?limit=0", "limit"),
        ("/api/v1/tickets?limit=201", "limit"),
        ("/api/v1/tickets?limit=ten", "limit"),
        ("/api/v1/tickets?cursor=not-a-cursor", "cursor"),
        ("/api/v1/tickets?sort=title", "sort"),
        ("/api/v1/tickets?limit=5&limit=6", "limit"),
        ("/api/v1/tasks?status=done", "status"),
        ("/api/v1/tasks?status=in_progress", "status"),
        ("/api/v1/tasks?claimable=yes", "claimable"),
        ("/api/v1/tasks?ticket_id=42", "ticket_id"),
        ("/api/v1/tasks?limit=1000", "limit"),
        ("/api/v1/tasks?phase=PHASE_DESIGN", "phase"),
    ] {
        let (status, body) = api.get(path).await;
        assert_invalid(status, &body, parameter);
    }
    // a cursor of one listing is not one of the other
    let (status, body) = api
        .get(&format!("/api/v1/tasks?cursor={ticket_cursor}"))
        .await;
    assert_invalid(status, &body, "cursor");
    // every bad parameter is named at once
    let (status, body) = api.get("/api/v1/tickets?phase=X&priority=Y&limit=0").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_of(&body).1.len(), 3, "{body}");

    // tasks by status, type and ticket
    api.complete(&task_of_moved[0], json!({"summary": "done"}))
        .await;
    let page = api.read("/api/v1/tasks?status=completed").await;
    assert_eq!(
        ids(page["tasks"].as_array().expect("tasks")),
        [task_of_moved[0].id.to_string()]
    );
    let page = api
        .read("/api/v1/tasks?task_type=create_requirements_doc")
        .await;
    let tasks = page["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 2, "{page}");
    assert!(tasks
        .iter()
        .all(|task| task["task_type"] == "create_requirements_doc"));
    let page = api
        .read(&format!("/api/v1/tasks?ticket_id={}", moved[1]))
        .await;
    let tasks = page["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 2, "{page}");
    assert!(tasks
        .iter()
        .all(|task| task["ticket_id"] == moved[1].as_str()));
    let page = api
        .read(&format!("/api/v1/tasks?ticket_id={}", Uuid::new_v4()))
        .await;
    assert_eq!(page, json!({"tasks": [], "next_cursor": null}));

    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimable_tasks_are_pending_in_the_current_phase_with_their_dependencies_done() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    // in REQUIREMENTS: analyze_requirements, then create_requirements_doc after it
    let working = api.create_ticket(json!({"title": "Working"})).await;
    api.moved(&working, "PHASE_REQUIREMENTS").await;
    // the DESIGN tasks generated ahead of time are not of its current phase
    let (status, body) = api
        .post(
            &format!("/api/v1/tickets/{working}/generate-tasks"),
            json!({"phase_id": "PHASE_DESIGN"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // blocked: its pending tasks wait for it
    let blocked = api.create_ticket(json!({"title": "Blocked"})).await;
    api.moved(&blocked, "PHASE_REQUIREMENTS").await;
    api.moved(&blocked, "PHASE_BLOCKED").await;

    let claimable = |page: &Value| -> Vec<(String, String)> {
        page["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .map(|task| {
                (
                    task["ticket_id"].as_str().expect("ticket_id").to_owned(),
                    task["task_type"].as_str().expect("task_type").to_owned(),
                )
            })
            .collect()
    };
    let page = api.read("/api/v1/tasks?claimable=true").await;
    assert_eq!(
        claimable(&page),
        [(working.clone(), "analyze_requirements".to_owned())],
        "{page}"
    );
    let task = &page["tasks"][0];
    assert_eq!(task["status"], "pending");
    assert_eq!(task["claimed_by"], Value::Null);
    assert_eq!(task["lease_expires_at"], Value::Null);
    assert_eq!(task["attempt"], 0);
    for member in [
        "id",
        "phase_id",
        "task_type",
        "description",
        "priority",
        "dependencies",
        "result",
        "created_at",
        "completed_at",
    ] {
        assert!(task.get(member).is_some(), "{member} in {task}");
    }
    // the others: 1 dependent + 2 DESIGN + 2 of the blocked ticket
    let others = api.read("/api/v1/tasks?claimable=false").await;
    assert_eq!(
        others["tasks"].as_array().expect("tasks").len(),
        5,
        "{others}"
    );

    // its dependency done, create_requirements_doc becomes claimable
    let analyze = api.open_tasks(&working, "PHASE_REQUIREMENTS").await[0].clone();
    assert_eq!(analyze.task_type, "analyze_requirements");
    api.complete(&analyze, json!({"summary": "analysed"})).await;
    let page = api
        .read(&format!("/api/v1/tasks?claimable=true&ticket_id={working}"))
        .await;
    assert_eq!(
        claimable(&page),
        [(working.clone(), "create_requirements_doc".to_owned())]
    );
    // unblocked, the blocked ticket's first task is claimable again
    api.moved(&blocked, "PHASE_REQUIREMENTS").await;
    let page = api.read("/api/v1/tasks?claimable=true&limit=1").await;
    assert_eq!(page["tasks"].as_array().expect("tasks").len(), 1);
    let rest = api
        .read(&format!(
            "/api/v1/tasks?claimable=true&cursor={}",
            page["next_cursor"].as_str().expect("a next page")
        ))
        .await;
    assert_eq!(rest["next_cursor"], Value::Null);
    let mut both = claimable(&page);
    both.extend(claimable(&rest));
    assert_eq!(
        both,
        [
            (working.clone(), "create_requirements_doc".to_owned()),
            (blocked.clone(), "analyze_requirements".to_owned())
        ]
    );

    // every task, two by two, in creation order, without gaps or repeats
    let created: Vec<String> = sqlx::query_scalar("select id::text from tasks order by seq")
        .fetch_all(&app.pool)
        .await
        .expect("the tasks");
    assert_eq!(created.len(), 6);
    let pages = all_pages(&api, "/api/v1/tasks?limit=2", "tasks").await;
    assert_eq!(pages.len(), 3);
    assert!(pages.iter().all(|page| page.len() == 2));
    let listed: Vec<String> = pages.iter().flat_map(|page| ids(page)).collect();
    assert_eq!(listed, created);

    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_context_for_a_phase_has_only_the_phases_before_it() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let ticket = api
        .create_ticket(
            json!({"title": "Context by phase", "description": "Read only what came before"}),
        )
        .await;
    api.moved(&ticket, "PHASE_REQUIREMENTS").await;
    api.finish_phase(&ticket, "PHASE_REQUIREMENTS").await;
    api.finish_phase(&ticket, "PHASE_DESIGN").await;
    let overview = api.read(&format!("/api/v1/tickets/{ticket}")).await;
    assert_eq!(overview["phase_id"], "PHASE_IMPLEMENTATION", "{overview}");

    let whole = api.read(&format!("/api/v1/tickets/{ticket}/context")).await;
    assert!(whole.get("for_phase").is_none(), "{whole}");
    let keys = |context: &Value| -> BTreeSet<String> {
        context["full_context"]
            .as_object()
            .expect("full_context")
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(
        keys(&whole),
        BTreeSet::from([
            "backlog_phase".to_owned(),
            "requirements_phase".to_owned(),
            "design_phase".to_owned()
        ])
    );
    let design_decision = "decided in PHASE_DESIGN by design_architecture";
    let requirements_decision = "decided in PHASE_REQUIREMENTS by analyze_requirements";
    let summary = whole["summary"].as_str().expect("summary");
    assert!(summary.contains(design_decision), "{summary}");

    let before_design = api
        .read(&format!(
            "/api/v1/tickets/{ticket}/context?for_phase=PHASE_DESIGN"
        ))
        .await;
    assert_eq!(before_design["for_phase"], "PHASE_DESIGN");
    assert_eq!(before_design["ticket_id"], ticket);
    assert_eq!(
        keys(&before_design),
        BTreeSet::from(["backlog_phase".to_owned(), "requirements_phase".to_owned()])
    );
    assert_eq!(
        before_design["full_context"]["requirements_phase"],
        whole["full_context"]["requirements_phase"]
    );
    let summary = before_design["summary"].as_str().expect("summary");
    assert!(summary.starts_with("# Context by phase"), "{summary}");
    assert!(summary.contains(requirements_decision), "{summary}");
    assert!(!summary.contains(design_decision), "{summary}");

    let before_requirements = api
        .read(&format!(
            "/api/v1/tickets/{ticket}/context?for_phase=PHASE_REQUIREMENTS"
        ))
        .await;
    assert_eq!(
        keys(&before_requirements),
        BTreeSet::from(["backlog_phase".to_owned()])
    );
    let summary = before_requirements["summary"].as_str().expect("summary");
    assert!(!summary.contains(requirements_decision), "{summary}");
    let before_backlog = api
        .read(&format!(
            "/api/v1/tickets/{ticket}/context?for_phase=PHASE_BACKLOG"
        ))
        .await;
    assert_eq!(before_backlog["full_context"], json!({}));
    assert!(before_backlog["summary"]
        .as_str()
        .is_some_and(|summary| summary.starts_with("# Context by phase")));
    // every phase so far comes before DONE
    let before_done = api
        .read(&format!(
            "/api/v1/tickets/{ticket}/context?for_phase=PHASE_DONE"
        ))
        .await;
    assert_eq!(keys(&before_done), keys(&whole));

    for (path, parameter) in [
        (
            format!("/api/v1/tickets/{ticket}/context?for_phase=PHASE_BLOCKED"),
            "for_phase",
        ),
        (
            format!("/api/v1/tickets/{ticket}/context?for_phase=design"),
            "for_phase",
        ),
        (
            format!("/api/v1/tickets/{ticket}/context?phase=PHASE_DESIGN"),
            "phase",
        ),
    ] {
        let (status, body) = api.get(&path).await;
        assert_invalid(status, &body, parameter);
    }
    let (status, body) = api
        .get(&format!(
            "/api/v1/tickets/{}/context?for_phase=PHASE_DESIGN",
            Uuid::new_v4()
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    api.stop().await;
    app.shutdown().await;
}
