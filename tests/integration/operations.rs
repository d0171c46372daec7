//! The endpoints the board is built on, against the real Postgres and RabbitMQ: board columns
//! with filters and pages, cards, a ticket's timeline and artifacts, the operations figures, the
//! live stream, and the operators' actions (replaying a dead letter, releasing any live lease),
//! raced where two operators could race.

use std::collections::BTreeSet;
use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use phaseflow::api::board::views::{
    BoardView, CardView, ColumnView, DeadLetterView, DeadLettersView, OperationsView, ReplayedView,
    TimelineKind, TimelineView,
};
use phaseflow::api::views::TaskPageView;
use phaseflow::domain::Phase;
use phaseflow::domain::TaskStatus;
use phaseflow::protocol::events::{PhaseTransitioned, TaskClaimed, TaskReleased, TicketCreated};
use phaseflow_client::OutgoingRequest;
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::common::http::{send, typed, Api, AGENT, OPERATOR, OPERATOR_TOKEN, OTHER_TOKEN, TOKEN};
use crate::common::requests::CREATE;
use crate::common::{Event, Requests, TestApp, WAIT};

/// An app whose API names [`OPERATOR`] an operator.
async fn with_operator(app: &mut TestApp) -> Api {
    app.settings.auth.operators = vec![OPERATOR.to_owned()];
    Api::start(app).await
}

async fn create(api: &Api, title: &str, priority: &str) -> String {
    let (status, ticket) = api
        .post(
            "/api/v1/tickets",
            json!({"title": title, "priority": priority}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    typed::<phaseflow::api::views::TicketView>(&ticket)
        .id
        .to_string()
}

async fn to_requirements(api: &Api, ticket: &str) {
    let (status, moved) = api
        .post(
            &format!("/api/v1/tickets/{ticket}/transition"),
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "ready"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
}

fn column(board: &BoardView, phase: Phase) -> &ColumnView {
    board
        .columns
        .iter()
        .find(|column| column.phase_id == phase)
        .expect("a column per phase")
}

fn card_ids(column: &ColumnView) -> Vec<String> {
    column
        .cards
        .iter()
        .map(|card| card.ticket_id.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_columns_page_filter_and_show_each_tickets_work() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let mut backlog = BTreeSet::new();
    for (title, priority) in [
        ("Alpha one", "HIGH"),
        ("alpha two", "HIGH"),
        ("Beta", "LOW"),
        ("Gamma", "MEDIUM"),
        ("Delta", "CRITICAL"),
    ] {
        backlog.insert(create(&api, title, priority).await);
    }
    let moving = create(&api, "Moving alpha", "LOW").await;
    to_requirements(&api, &moving).await;

    // the first page of every column, then the rest of BACKLOG through its cursor
    let board: BoardView = api.read_as("/api/v1/board?limit=2").await;
    let phases: Vec<Phase> = board.columns.iter().map(|column| column.phase_id).collect();
    assert_eq!(phases.first(), Some(&Phase::Backlog));
    assert_eq!(phases.last(), Some(&Phase::Blocked));
    assert_eq!(phases.len(), 8);
    let first = column(&board, Phase::Backlog);
    assert_eq!(first.total, 5);
    let mut seen = card_ids(first);
    assert_eq!(seen.len(), 2);
    let mut cursor = first.next_cursor.clone().expect("more pages");
    loop {
        let page: ColumnView = api
            .read_as(&format!(
                "/api/v1/board/columns/PHASE_BACKLOG?limit=2&cursor={cursor}"
            ))
            .await;
        assert_eq!(page.total, 5);
        seen.extend(card_ids(&page));
        match page.next_cursor {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "no card twice: {seen:?}");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), backlog);

    // filters: priority, and a case-insensitive part of the title
    let high: BoardView = api.read_as("/api/v1/board?priority=HIGH").await;
    assert_eq!(column(&high, Phase::Backlog).total, 2);
    assert_eq!(column(&high, Phase::Requirements).total, 0);
    let alpha: BoardView = api.read_as("/api/v1/board?q=ALPHA").await;
    assert_eq!(column(&alpha, Phase::Backlog).total, 2);
    assert_eq!(column(&alpha, Phase::Requirements).total, 1);

    // the card of a ticket at work: its visit's tasks, its claim holders, its age in phase
    api.wait_for_tasks(&moving, "PHASE_REQUIREMENTS", 2).await;
    let (status, claimed) = api
        .post("/api/v1/tasks/claim", json!({"ticket_id": moving}))
        .await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    let card: CardView = api.read_as(&format!("/api/v1/board/cards/{moving}")).await;
    assert_eq!(card.phase_id, Phase::Requirements);
    assert_eq!((card.tasks_done, card.tasks_total), (0, 2));
    assert_eq!(card.claimed_by, [AGENT]);
    assert_eq!(card.title, "Moving alpha");

    // bad parameters are named
    for (query, named) in [
        ("priority=URGENT", "priority"),
        ("limit=0", "limit"),
        ("colour=red", "colour"),
    ] {
        let (status, body) = api.get(&format!("/api/v1/board?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert!(body["error"]["reasons"][0]
            .as_str()
            .expect("a reason")
            .starts_with(named));
    }
    let (status, _) = api
        .get(&format!("/api/v1/board/cards/{}", Uuid::new_v4()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeline_keeps_actors_reasons_and_correlation_ids() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let ticket = create(&api, "Traced", "MEDIUM").await;
    let (status, moved) = send(
        api.request(
            Method::POST,
            &format!("/api/v1/tickets/{ticket}/transition"),
        )
        .header("x-correlation-id", "trace-4711")
        .json(&json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "specs are in"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    let (status, _) = api
        .post(
            &format!("/api/v1/tickets/{ticket}/artifacts"),
            json!({"phase_id": "PHASE_REQUIREMENTS", "artifact_type": "notes",
                   "artifact_path": "docs/notes.md", "artifact_content": {"text": "<b>hi</b>"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let timeline: TimelineView = api
        .read_as(&format!("/api/v1/board/tickets/{ticket}/timeline"))
        .await;
    let entries = &timeline.entries;
    assert_eq!(entries[0].kind, TimelineKind::Created);
    let moved = entries
        .iter()
        .find(|entry| entry.kind == TimelineKind::Transitioned)
        .expect("the move is on the timeline");
    assert_eq!(moved.actor, AGENT);
    assert_eq!(moved.reason.as_deref(), Some("specs are in"));
    assert_eq!(moved.correlation_id.as_deref(), Some("trace-4711"));
    assert_eq!(moved.phase_id, Some(Phase::Requirements));
    assert!(!moved.forced);
    let kinds: Vec<TimelineKind> = entries.iter().map(|entry| entry.kind).collect();
    for kind in [TimelineKind::TaskCreated, TimelineKind::ArtifactSubmitted] {
        assert!(kinds.contains(&kind), "{kind:?} in {kinds:?}");
    }
    let times: Vec<_> = entries.iter().map(|entry| entry.at).collect();
    assert!(times.windows(2).all(|pair| pair[0] <= pair[1]), "{times:?}");

    let (status, artifacts) = api
        .get(&format!("/api/v1/tickets/{ticket}/artifacts"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        artifacts["artifacts"],
        json!([{"phase_id": "PHASE_REQUIREMENTS", "artifact_type": "notes",
                "artifact_path": "docs/notes.md", "content": {"text": "<b>hi</b>"},
                "collected_by": AGENT, "task_id": null,
                "collected_at": artifacts["artifacts"][0]["collected_at"]}])
    );
    api.stop().await;
    app.shutdown().await;
}

/// Puts a request in the dead-letter queue as a worker would have, with its reason.
async fn dead_letter(app: &TestApp, request: &OutgoingRequest, reason: &str) {
    let channel = app.amqp.create_channel().await.expect("channel");
    let mut headers = FieldTable::default();
    headers.insert(
        "x-phaseflow-error".into(),
        AMQPValue::LongString(reason.into()),
    );
    headers.insert(
        "x-phaseflow-routing-key".into(),
        AMQPValue::LongString(request.request_type.as_str().into()),
    );
    let body = serde_json::to_vec(&request.to_cloudevent()).expect("json");
    channel
        .basic_publish(
            app.settings.amqp.dead_letter_exchange.as_str().into(),
            "".into(),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default()
                .with_message_id(request.id.as_str().into())
                .with_content_type("application/json".into())
                .with_type(request.request_type.as_str().into())
                .with_delivery_mode(2)
                .with_headers(headers),
        )
        .await
        .expect("published")
        .await
        .expect("confirmed");
}

async fn listed_dead_letters(api: &Api) -> Vec<DeadLetterView> {
    api.read_as::<DeadLettersView>("/api/v1/dead-letters")
        .await
        .dead_letters
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_operators_replay_a_dead_letter_once_and_an_agent_may_not() {
    let mut app = TestApp::spawn().await;
    let api = with_operator(&mut app).await;
    let request = OutgoingRequest {
        id: Uuid::new_v4().to_string(),
        request_type: "ticket.create.requested".to_owned(),
        subject: None,
        source: "agent/test".to_owned(),
        actor: Some("agent-test".to_owned()),
        correlation_id: None,
        data: json!({"title": "Back from the dead letters"}),
    };
    dead_letter(
        &app,
        &request,
        "the worker was too old to know this request",
    )
    .await;
    let letters = listed_dead_letters(&api).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].message_id.as_ref(), Some(&request.id));
    assert_eq!(letters[0].routing_key, "ticket.create.requested");
    assert_eq!(
        letters[0].reason.as_deref(),
        Some("the worker was too old to know this request")
    );
    assert!(letters[0].body.contains("Back from the dead letters"));
    // listing leaves it where it was
    assert_eq!(listed_dead_letters(&api).await.len(), 1);

    let path = format!("/api/v1/dead-letters/{}/replay", request.id);
    let (status, refused) = send(api.request_as(TOKEN, Method::POST, &path).json(&json!({}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["code"], "forbidden");
    assert_eq!(listed_dead_letters(&api).await.len(), 1, "still there");

    let replay = || {
        send(
            api.request_as(OPERATOR_TOKEN, Method::POST, &path)
                .json(&json!({})),
        )
    };
    let ((first, first_body), (second, second_body)) = tokio::join!(replay(), replay());
    let mut statuses = [first, second];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::NOT_FOUND],
        "{first_body} {second_body}"
    );
    let (replayed, missing) = if first == StatusCode::OK {
        (first_body, second_body)
    } else {
        (second_body, first_body)
    };
    let replayed: ReplayedView = typed(&replayed);
    assert_eq!(replayed.replayed_by, OPERATOR);
    assert_eq!(replayed.routing_key, "ticket.create.requested");
    assert_eq!(missing["error"]["code"], "dead_letter_not_found");

    app.outcome_of_request::<TicketCreated>(&request.id, CREATE)
        .await
        .succeeded();
    assert!(listed_dead_letters(&api).await.is_empty());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outcomes = app
        .events
        .typed()
        .into_iter()
        .filter(|event| event.causationid == request.id && event.is("ticket.created"))
        .count();
    assert_eq!(outcomes, 1, "applied once");
    // the replay is on the record, once, with the operator
    let operations: OperationsView = api.read_as("/api/v1/operations").await;
    let replays = &operations.recent_replays;
    assert_eq!(replays.len(), 1, "{replays:?}");
    assert_eq!(replays[0].message_id, request.id);
    assert_eq!(replays[0].replayed_by, OPERATOR);
    assert_eq!(
        replays[0].reason.as_deref(),
        Some("the worker was too old to know this request")
    );
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_may_release_any_live_lease_once_and_nobody_else_may() {
    let mut app = TestApp::without_worker().await;
    let api = with_operator(&mut app).await;
    let ticket = create(&api, "Held", "MEDIUM").await;
    to_requirements(&api, &ticket).await;
    api.wait_for_tasks(&ticket, "PHASE_REQUIREMENTS", 2).await;
    let (status, claimed) = api
        .post("/api/v1/tasks/claim", json!({"ticket_id": ticket}))
        .await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    let task = typed::<TaskClaimed>(&claimed).task_id;
    let path = format!("/api/v1/tasks/{task}/release");

    // another agent may neither release it nor force it
    let (status, body) = send(
        api.request_as(OTHER_TOKEN, Method::POST, &path)
            .json(&json!({"reason": "mine now"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("lease_lost"))
    );
    let (status, body) = send(
        api.request_as(OTHER_TOKEN, Method::POST, &path)
            .json(&json!({"reason": "mine now", "force": true})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (StatusCode::FORBIDDEN, json!("forbidden")),
        "{body}"
    );
    // an operator without force is just another agent
    let (status, _) = send(
        api.request_as(OPERATOR_TOKEN, Method::POST, &path)
            .json(&json!({"reason": "stuck"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // two forced releases race: one releases, the other finds no lease
    let release = || {
        send(
            api.request_as(OPERATOR_TOKEN, Method::POST, &path)
                .json(&json!({"reason": "the agent is stuck", "force": true})),
        )
    };
    let ((first, first_body), (second, second_body)) = tokio::join!(release(), release());
    let mut statuses = [first, second];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{first_body} {second_body}"
    );
    let released: TaskReleased = typed(if first == StatusCode::OK {
        &first_body
    } else {
        &second_body
    });
    assert_eq!(released.released_by, OPERATOR);
    assert_eq!(released.reason.as_deref(), Some("the agent is stuck"));
    let tasks: TaskPageView = api
        .read_as(&format!("/api/v1/tasks?ticket_id={ticket}"))
        .await;
    let task_row = tasks
        .tasks
        .iter()
        .find(|row| row.task.id == task)
        .expect("the task");
    assert_eq!(task_row.task.status, TaskStatus::Pending, "{task_row:?}");
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operations_page_sees_the_replicas_queues_outbox_and_expiries() {
    let mut app = TestApp::spawn().await;
    let api = Api::start(&mut app).await;
    let ticket = create(&api, "Expiring", "MEDIUM").await;
    to_requirements(&api, &ticket).await;
    api.wait_for_tasks(&ticket, "PHASE_REQUIREMENTS", 2).await;
    let (status, claimed) = api
        .post("/api/v1/tasks/claim", json!({"ticket_id": ticket}))
        .await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    let claimed = typed::<TaskClaimed>(&claimed).task_id;
    sqlx::query(
        "update tasks set lease_expires_at = now() - interval '1 second' where status = 'claimed'",
    )
    .execute(&app.pool)
    .await
    .expect("lease ran out");

    let deadline = tokio::time::Instant::now() + WAIT;
    let operations = loop {
        let operations: OperationsView = api.read_as("/api/v1/operations").await;
        let kinds: BTreeSet<&str> = operations
            .replicas
            .iter()
            .filter(|replica| replica.ready && !replica.stale)
            .map(|replica| replica.kind.as_str())
            .collect();
        let expired = operations
            .leases
            .recent_expiries
            .iter()
            .any(|expiry| expiry.task_id == claimed);
        if kinds.contains("worker") && kinds.contains("api") && expired {
            break operations;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replicas and the expiry did not show: {operations:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let expiry = &operations.leases.recent_expiries[0];
    assert_eq!(expiry.claimed_by, AGENT);
    assert_eq!(expiry.attempt, 1);
    assert!(!expiry.failed);
    let queues = &operations.queues;
    assert!(queues.reachable);
    let requests = queues.requests.as_ref().expect("the requests queue");
    assert_eq!(requests.name, app.settings.amqp.requests_queue);
    assert!(requests.consumers >= 1);
    let dead_letter = queues.dead_letter.as_ref().expect("the dead-letter queue");
    assert_eq!(dead_letter.messages, 0);
    api.stop().await;
    app.shutdown().await;
}

/// Reads server-sent events from a response until `done` says stop (or WAIT passes); returns
/// every `data` of an `event: cloudevent`, read as an event.
async fn read_stream(
    response: &mut reqwest::Response,
    done: impl Fn(&[Event]) -> bool,
) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut buffer = String::new();
    let mut events = Vec::new();
    while !done(&events) {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("the stream sent what was expected in time")
            .expect("the stream is readable")
            .expect("the stream goes on");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let message: String = buffer.drain(..end + 2).collect();
            let mut kind = "";
            let mut data = String::new();
            for line in message.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    kind = value.trim();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.trim_start());
                }
            }
            if kind == "cloudevent" {
                let event = serde_json::from_str(&data).expect("an event is JSON");
                events.push(Event::from_json(event));
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_stream_carries_its_tickets_events_as_they_are_published() {
    let mut app = TestApp::spawn().await;
    let api = Api::start(&mut app).await;
    let watched = app.create_ticket("Watched").await;
    let other = app.create_ticket("Not watched").await;
    let mut response = api
        .request(Method::GET, &format!("/api/v1/stream?ticket_id={watched}"))
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    // the feed follows the exchange once its queue is bound; a resync comes first otherwise
    tokio::time::sleep(Duration::from_millis(300)).await;

    for ticket in [&other, &watched] {
        app.send(
            "phase.transition.requested",
            Some(ticket),
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "go"}),
        )
        .await;
    }
    let events = read_stream(&mut response, |events| {
        events.iter().any(|event| event.is("phase.transitioned"))
    })
    .await;
    assert!(
        events
            .iter()
            .all(|event| event.subject.as_deref() == Some(watched.as_str())),
        "only the watched ticket's events: {events:#?}"
    );
    let moved = events
        .iter()
        .find(|event| event.is("phase.transitioned"))
        .expect("the move")
        .clone()
        .typed::<PhaseTransitioned>();
    assert_eq!(moved.data.current_phase, Phase::Requirements);
    drop(response);

    let (status, _) = send(api.anonymous(Method::GET, "/api/v1/stream")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_any_worker_declared_its_queues_the_operations_page_says_so() {
    let mut app = TestApp::without_worker().await;
    // queues of a deployment whose workers never ran
    let amqp = &mut app.settings.amqp;
    amqp.requests_queue = format!("{}-never-declared", amqp.requests_queue);
    amqp.dead_letter_queue = format!("{}-never-declared", amqp.dead_letter_queue);
    let api = with_operator(&mut app).await;
    let operations: OperationsView = api.read_as("/api/v1/operations").await;
    assert!(operations.queues.reachable);
    assert!(operations.queues.requests.is_none(), "{operations:?}");
    assert!(operations.queues.dead_letter.is_none(), "{operations:?}");
    let (status, listed) = api.get("/api/v1/dead-letters").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed, json!({"dead_letters": [], "total": null}));
    let (status, missing) = send(
        api.request_as(
            OPERATOR_TOKEN,
            Method::POST,
            &format!("/api/v1/dead-letters/{}/replay", Uuid::new_v4()),
        )
        .json(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    assert_eq!(missing["error"]["code"], "dead_letter_not_found");
    api.stop().await;
    app.shutdown().await;
}
