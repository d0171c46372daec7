//! Budgets, mostly against Postgres alone: totals by task, phase, ticket and agent are the sums of what
//! was reported (each request once); the 80 % and 100 % marks publish `budget.warning` and
//! `budget.exceeded` once per limit value, also when reports race across them; a ticket whose
//! budget is used up claims nothing (`budget_exhausted`) and is blocked by the system until an
//! operator raises the budget and moves it back; an agent over its daily budget claims nothing
//! until the next UTC day; only operators change budgets. Over HTTP and the broker: the budget
//! routes and the usage read.

use std::sync::Arc;
use std::time::Duration;

use phaseflow::domain::Phase;
use phaseflow::protocol::RejectionCode;
use phaseflow::workflow::{Registration, RetryPolicy};
use phaseflow_client::budget::{Amount, BudgetAlert, BudgetLimit, TicketBudget};
use phaseflow_client::events::{TicketBudgetSet, TicketCreated};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::common::factory::Placed;
use crate::common::http::{self, send, Api};
use crate::common::requests::{CREATE, HEARTBEAT, TRANSITION};
use crate::common::rules::Rules;
use crate::common::{phase_of, uuid, Requests, TestApp};

const SET_BUDGET: &str = "ticket.budget.set.requested";
const OPERATOR: &str = "ops";

async fn rules() -> Rules {
    Rules::with_settings(|settings| settings.auth.operators = vec![OPERATOR.to_owned()]).await
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        max_attempts: Some(3),
    }
}

/// Sets a ticket's budget as the operator.
async fn set_budget(rules: &Rules, ticket: &str, budget: Value) -> TicketBudgetSet {
    rules
        .request_as::<TicketBudgetSet>(OPERATOR, SET_BUDGET, Some(ticket), budget)
        .await
        .succeeded()
        .data
}

/// Claims the visit's task of `task_type` for `agent`; returns its id.
async fn claimed(rules: &Rules, agent: &str, placed: &Placed, task_type: &str) -> String {
    let task = placed.task(task_type).to_owned();
    rules
        .claim(agent, Some(&placed.ticket), json!({"task_id": task}))
        .await
        .succeeded();
    task
}

/// A heartbeat of `agent` on `task` reporting `usage`.
async fn report(rules: &Rules, agent: &str, ticket: &str, task: &str, usage: Value) {
    rules
        .heartbeat(agent, ticket, json!({"task_id": task, "usage": usage}))
        .await
        .succeeded();
}

/// The alerts of one type published so far, as (ticket, agent, limit, budget).
fn alerts(rules: &Rules, event_type: &str) -> Vec<BudgetAlert> {
    rules
        .events
        .typed()
        .into_iter()
        .filter(|event| event.is(event_type))
        .map(|event| event.data())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_by_task_phase_agent_and_ticket_are_the_sums_reported() {
    let rules = rules().await;
    let placed = rules.ticket_in(Phase::Implementation).await;
    let code = claimed(&rules, "dev-a", &placed, "implement_feature").await;
    let tests = claimed(&rules, "dev-b", &placed, "write_unit_tests").await;
    let beat = json!({"task_id": code, "usage": {"input_tokens": 1000, "output_tokens": 100, "cost_usd": 0.5}});
    // a redelivered request counts once
    for _ in 0..3 {
        rules
            .publish(
                "dev-a",
                "beat-a",
                HEARTBEAT,
                Some(&placed.ticket),
                beat.clone(),
            )
            .await;
    }
    report(
        &rules,
        "dev-a",
        &placed.ticket,
        &code,
        json!({"input_tokens": 10, "cost_usd": 0.25}),
    )
    .await;
    report(
        &rules,
        "dev-b",
        &placed.ticket,
        &tests,
        json!({"output_tokens": 40, "cost_usd": 0.125}),
    )
    .await;
    let usage = rules
        .workflow
        .ticket_usage(placed.ticket_id(), retry())
        .await
        .expect("the usage reads")
        .expect("the ticket exists");
    assert_eq!(
        (
            usage.spent.input_tokens,
            usage.spent.output_tokens,
            usage.spent.cost_usd
        ),
        (1010, 140, 0.875)
    );
    assert_eq!(usage.by_phase.len(), 1);
    assert_eq!(usage.by_phase[0].0, Phase::Implementation);
    assert_eq!(usage.by_phase[0].1, usage.spent);
    let by_agent: Vec<(&str, u64, u64, f64)> = usage
        .by_agent
        .iter()
        .map(|(agent, spent)| {
            (
                agent.as_str(),
                spent.input_tokens,
                spent.output_tokens,
                spent.cost_usd,
            )
        })
        .collect();
    assert_eq!(
        by_agent,
        [("dev-a", 1010, 100, 0.75), ("dev-b", 0, 40, 0.125)]
    );
    let by_task: Vec<(String, &str, u64)> = usage
        .by_task
        .iter()
        .map(|task| {
            (
                task.task_id.to_string(),
                task.task_type.as_str(),
                task.spent.input_tokens + task.spent.output_tokens,
            )
        })
        .collect();
    assert_eq!(
        by_task,
        [
            (code.clone(), "implement_feature", 1110),
            (tests.clone(), "write_unit_tests", 40)
        ]
    );
    // the running totals on the ticket are the sums of its rows
    let rows: (i64, f64) = sqlx::query_as(
        "select sum(input_tokens + output_tokens)::bigint, sum(cost_usd)::float8 from task_usage \
         where ticket_id = $1",
    )
    .bind(uuid(&placed.ticket))
    .fetch_one(&rules.pool)
    .await
    .expect("the rows");
    assert_eq!(rows, (1150, 0.875));
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_is_created_with_its_budget_or_the_configured_one() {
    let rules = Rules::with_settings(|settings| {
        settings.budgets.ticket_tokens = Some(50_000);
        settings.budgets.ticket_cost_usd = Some(5.0);
    })
    .await;
    let given = rules
        .request::<TicketCreated>(
            CREATE,
            None,
            json!({"title": "Budgeted", "budget": {"tokens": 1000, "cost_usd": null}}),
        )
        .await
        .succeeded();
    assert_eq!(
        given.data.budget,
        Some(TicketBudget {
            tokens: Some(1000),
            cost_usd: None
        }),
        "a given limit replaces the default, null removes it"
    );
    let defaulted = rules
        .request::<TicketCreated>(CREATE, None, json!({"title": "Defaulted"}))
        .await
        .succeeded();
    assert_eq!(
        defaulted.data.budget,
        Some(TicketBudget {
            tokens: Some(50_000),
            cost_usd: Some(5.0)
        })
    );
    let bad = rules
        .request::<TicketCreated>(
            CREATE,
            None,
            json!({"title": "Bad", "budget": {"tokens": 0, "cost_usd": -1, "euros": 3}}),
        )
        .await
        .rejected();
    assert_eq!(bad.data.code, RejectionCode::InvalidRequest);
    for field in ["budget.tokens", "budget.cost_usd", "budget.euros"] {
        assert!(bad.reasons().contains(field), "{field}: {bad}");
    }
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_racing_across_the_marks_publish_each_alert_once_and_block_once() {
    let rules = rules().await;
    let placed = rules.ticket_in(Phase::Implementation).await;
    set_budget(&rules, &placed.ticket, json!({"tokens": 1000})).await;
    let code = claimed(&rules, "dev-a", &placed, "implement_feature").await;
    let tests = claimed(&rules, "dev-b", &placed, "write_unit_tests").await;
    // twelve reports of 100 tokens, six from each agent at once: the 800th and the 1000th
    // token are reached by whichever comes first
    let rules = Arc::new(rules);
    let mut beats = JoinSet::new();
    for n in 0..12 {
        let (agent, task) = if n % 2 == 0 {
            ("dev-a", code.clone())
        } else {
            ("dev-b", tests.clone())
        };
        let (rules, ticket) = (rules.clone(), placed.ticket.clone());
        beats.spawn(async move {
            rules
                .publish(
                    agent,
                    &format!("race-{n}"),
                    HEARTBEAT,
                    Some(&ticket),
                    json!({"task_id": task, "usage": {"input_tokens": 60, "output_tokens": 40}}),
                )
                .await
        });
    }
    beats.join_all().await;
    rules.take_events().await;
    let warnings = alerts(&rules, "budget.warning");
    let exceeded = alerts(&rules, "budget.exceeded");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(exceeded.len(), 1, "{exceeded:?}");
    let (warning, used_up) = (&warnings[0], &exceeded[0]);
    assert_eq!(warning.ticket_id, Some(placed.ticket_id()));
    assert_eq!(warning.limit, BudgetLimit::Tokens);
    assert_eq!(warning.budget, Amount::Tokens(1000));
    assert_eq!(warning.spent, Amount::Tokens(800));
    assert_eq!(used_up.spent, Amount::Tokens(1000));
    let blocks: Vec<_> = rules
        .events
        .of_type("phase.transitioned", &placed.ticket)
        .into_iter()
        .filter(|moved| moved.data["current_phase"] == "PHASE_BLOCKED")
        .collect();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].actor, "system");
    assert_eq!(blocks[0].data["reason"], "budget exceeded: tokens");
    assert_eq!(phase_of(&rules.pool, &placed.ticket).await, "PHASE_BLOCKED");
    // work already claimed may still be reported, and counts
    let usage = rules
        .workflow
        .ticket_usage(placed.ticket_id(), retry())
        .await
        .expect("the usage reads")
        .expect("the ticket exists");
    assert_eq!(usage.spent.input_tokens + usage.spent.output_tokens, 1200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_over_budget_claims_nothing_until_an_operator_raises_it_and_unblocks_it() {
    let rules = rules().await;
    let placed = rules.manual_ticket_in(Phase::Implementation).await;
    set_budget(&rules, &placed.ticket, json!({"cost_usd": 1.0})).await;
    let tests = placed.task("write_unit_tests").to_owned();
    let code = claimed(&rules, "dev-a", &placed, "implement_feature").await;
    report(
        &rules,
        "dev-a",
        &placed.ticket,
        &code,
        json!({"cost_usd": 0.5}),
    )
    .await;
    assert!(alerts(&rules, "budget.warning").is_empty());
    report(
        &rules,
        "dev-a",
        &placed.ticket,
        &code,
        json!({"cost_usd": 0.5}),
    )
    .await;
    assert_eq!(alerts(&rules, "budget.warning").len(), 1);
    assert_eq!(alerts(&rules, "budget.exceeded").len(), 1);
    assert_eq!(phase_of(&rules.pool, &placed.ticket).await, "PHASE_BLOCKED");
    let history: (String, String) = sqlx::query_as(
        "select transitioned_by, transition_reason from phase_history where ticket_id = $1 \
         order by id desc limit 1",
    )
    .bind(uuid(&placed.ticket))
    .fetch_one(&rules.pool)
    .await
    .expect("the move");
    assert_eq!(
        history,
        ("system".to_owned(), "budget exceeded: cost_usd".to_owned())
    );

    // a claim of the ticket, of one of its tasks: budget_exhausted; of any ticket: nothing
    let refused = rules
        .claim("dev-b", Some(&placed.ticket), json!({}))
        .await
        .rejected();
    assert_eq!(
        refused.data.code,
        RejectionCode::BudgetExhausted,
        "{refused}"
    );
    let refused = rules
        .claim("dev-b", Some(&placed.ticket), json!({"task_id": tests}))
        .await
        .rejected();
    assert_eq!(
        refused.data.code,
        RejectionCode::BudgetExhausted,
        "{refused}"
    );
    assert!(refused.reasons().contains("budget"), "{refused}");

    // only an operator changes a budget
    let forbidden = rules
        .request_as::<TicketBudgetSet>(
            "dev-b",
            SET_BUDGET,
            Some(&placed.ticket),
            json!({"cost_usd": 100}),
        )
        .await
        .rejected();
    assert_eq!(forbidden.data.code, RejectionCode::Forbidden);
    let raised = set_budget(&rules, &placed.ticket, json!({"cost_usd": 2.0})).await;
    assert_eq!(raised.set_by, OPERATOR);
    assert_eq!(raised.budget.cost_usd, Some(2.0));
    assert_eq!(
        phase_of(&rules.pool, &placed.ticket).await,
        "PHASE_BLOCKED",
        "a raise moves nothing by itself"
    );
    rules
        .request_as::<Value>(
            OPERATOR,
            TRANSITION,
            Some(&placed.ticket),
            json!({"to_phase": "PHASE_IMPLEMENTATION", "reason": "budget raised"}),
        )
        .await
        .succeeded();
    let claimed = rules
        .claim("dev-b", Some(&placed.ticket), json!({"task_id": tests}))
        .await
        .succeeded();
    assert_eq!(claimed.data.task_id.to_string(), tests);
    // the raise's own marks: 1.0 of 2.0 is below 80 %, so nothing more was published
    assert_eq!(alerts(&rules, "budget.warning").len(), 1);
    // the next report past 80 % of the new value warns again, once
    report(
        &rules,
        "dev-b",
        &placed.ticket,
        &tests,
        json!({"cost_usd": 0.25}),
    )
    .await;
    report(
        &rules,
        "dev-b",
        &placed.ticket,
        &tests,
        json!({"cost_usd": 0.375}),
    )
    .await;
    report(
        &rules,
        "dev-b",
        &placed.ticket,
        &tests,
        json!({"cost_usd": 0.125}),
    )
    .await;
    let warnings = alerts(&rules, "budget.warning");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert_eq!(
        (warnings[1].budget, warnings[1].spent),
        (Amount::Usd(2.0), Amount::Usd(1.625))
    );
    // lowering it under the spend publishes the new value's alerts and blocks again
    set_budget(&rules, &placed.ticket, json!({"cost_usd": 0.9})).await;
    assert_eq!(alerts(&rules, "budget.exceeded").len(), 2);
    assert_eq!(phase_of(&rules.pool, &placed.ticket).await, "PHASE_BLOCKED");
    // null removes the limit
    let removed = set_budget(&rules, &placed.ticket, json!({"cost_usd": null})).await;
    assert_eq!(removed.budget, TicketBudget::default());
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_blocking_an_exhausted_ticket_stays_where_it_is_and_claims_pass_it_over() {
    let rules = Rules::with_settings(|settings| {
        settings.auth.operators = vec![OPERATOR.to_owned()];
        settings.budgets.block_when_exceeded = false;
    })
    .await;
    let spent = rules.ticket_in(Phase::Implementation).await;
    set_budget(&rules, &spent.ticket, json!({"tokens": 100})).await;
    let code = claimed(&rules, "dev-a", &spent, "implement_feature").await;
    report(
        &rules,
        "dev-a",
        &spent.ticket,
        &code,
        json!({"output_tokens": 100}),
    )
    .await;
    assert_eq!(alerts(&rules, "budget.exceeded").len(), 1);
    assert_eq!(
        phase_of(&rules.pool, &spent.ticket).await,
        "PHASE_IMPLEMENTATION"
    );
    let refused = rules
        .claim("dev-b", Some(&spent.ticket), json!({}))
        .await
        .rejected();
    assert_eq!(refused.data.code, RejectionCode::BudgetExhausted);
    // "the next task of any ticket" passes over it
    let refused = rules.claim("dev-b", None, json!({})).await.rejected();
    assert_eq!(
        refused.data.code,
        RejectionCode::NoTaskAvailable,
        "{refused}"
    );
    let other = rules.ticket_in(Phase::Implementation).await;
    let claimed = rules.claim("dev-b", None, json!({})).await.succeeded();
    assert_eq!(claimed.data.ticket_id, other.ticket_id());
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_over_its_daily_budget_claims_nothing_until_the_next_utc_day() {
    let rules = rules().await;
    rules
        .workflow
        .define_agent(
            &Registration {
                agent_id: "dev-a".to_owned(),
                roles: vec!["*".to_owned()],
                max_claims: Some(5),
                operator: false,
                daily_cost_usd: Some(2.0),
            },
            "test",
        )
        .await
        .expect("the agent registers");
    let placed = rules.ticket_in(Phase::Implementation).await;
    let other = rules.ticket_in(Phase::Implementation).await;
    let code = claimed(&rules, "dev-a", &placed, "implement_feature").await;
    let elsewhere = claimed(&rules, "dev-a", &other, "implement_feature").await;
    // spend on two tickets adds up to the agent's day
    report(
        &rules,
        "dev-a",
        &placed.ticket,
        &code,
        json!({"cost_usd": 1.0}),
    )
    .await;
    report(
        &rules,
        "dev-a",
        &other.ticket,
        &elsewhere,
        json!({"cost_usd": 0.75}),
    )
    .await;
    let warnings = alerts(&rules, "budget.warning");
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].agent_id.as_deref(), Some("dev-a"));
    assert_eq!(warnings[0].ticket_id, None);
    report(
        &rules,
        "dev-a",
        &other.ticket,
        &elsewhere,
        json!({"cost_usd": 0.25}),
    )
    .await;
    let exceeded = alerts(&rules, "budget.exceeded");
    assert_eq!(exceeded.len(), 1);
    assert_eq!(exceeded[0].agent_id.as_deref(), Some("dev-a"));
    assert_eq!(exceeded[0].budget, Amount::Usd(2.0));
    assert!(exceeded[0].day.is_some());
    // nothing is blocked, but the agent claims nothing more today; others still do
    assert_eq!(
        phase_of(&rules.pool, &placed.ticket).await,
        "PHASE_IMPLEMENTATION"
    );
    let refused = rules
        .claim("dev-a", Some(&placed.ticket), json!({}))
        .await
        .rejected();
    assert_eq!(
        refused.data.code,
        RejectionCode::BudgetExhausted,
        "{refused}"
    );
    assert!(refused.reasons().contains("today"), "{refused}");
    rules
        .claim("dev-b", Some(&placed.ticket), json!({}))
        .await
        .succeeded();
    // the next UTC day: the day's spend is yesterday's
    sqlx::query("update agent_daily_spend set day = day - 1")
        .execute(&rules.pool)
        .await
        .expect("the clock moves on");
    rules
        .claim("dev-a", Some(&other.ticket), json!({}))
        .await
        .succeeded();
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_budget_given_during_the_day_counts_the_day_s_spend_before_it() {
    let rules = rules().await;
    let placed = rules.ticket_in(Phase::Implementation).await;
    let code = claimed(&rules, "dev-late", &placed, "implement_feature").await;
    report(
        &rules,
        "dev-late",
        &placed.ticket,
        &code,
        json!({"cost_usd": 1.5}),
    )
    .await;
    let registration = |daily_cost_usd| Registration {
        agent_id: "dev-late".to_owned(),
        roles: vec!["*".to_owned()],
        max_claims: Some(5),
        operator: false,
        daily_cost_usd,
    };
    rules
        .workflow
        .define_agent(&registration(Some(1.0)), "test")
        .await
        .expect("the agent gets a daily budget");
    let refused = rules
        .claim("dev-late", Some(&placed.ticket), json!({}))
        .await
        .rejected();
    assert_eq!(
        refused.data.code,
        RejectionCode::BudgetExhausted,
        "{refused}"
    );
    rules
        .workflow
        .define_agent(&registration(Some(5.0)), "test")
        .await
        .expect("the budget is raised");
    report(
        &rules,
        "dev-late",
        &placed.ticket,
        &code,
        json!({"cost_usd": 2.5}),
    )
    .await;
    let warnings = alerts(&rules, "budget.warning");
    assert_eq!(warnings.len(), 1, "4.0 of 5.0: {warnings:?}");
    assert_eq!(warnings[0].spent, Amount::Usd(4.0));
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_change_names_its_problems_and_a_missing_ticket() {
    let rules = rules().await;
    let placed = rules.ticket_in(Phase::Design).await;
    let bad = rules
        .request_as::<TicketBudgetSet>(
            OPERATOR,
            SET_BUDGET,
            Some(&placed.ticket),
            json!({"tokens": 1.5, "cost_usd": "10", "hours": 2}),
        )
        .await
        .rejected();
    assert_eq!(bad.data.code, RejectionCode::InvalidRequest);
    for field in ["tokens", "cost_usd", "hours"] {
        assert!(bad.reasons().contains(field), "{field}: {bad}");
    }
    let missing = uuid::Uuid::new_v4().to_string();
    let absent = rules
        .request_as::<TicketBudgetSet>(OPERATOR, SET_BUDGET, Some(&missing), json!({"tokens": 10}))
        .await
        .rejected();
    assert_eq!(absent.data.code, RejectionCode::TicketNotFound);
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_operators_set_budgets_and_everyone_reads_what_a_ticket_cost() {
    let mut app = TestApp::spawn().await;
    app.settings.auth.operators = vec![http::OPERATOR.to_owned()];
    let api = Api::start(&mut app).await;
    let (status, created) = api
        .post(
            "/api/v1/tickets",
            json!({"title": "Budgeted over HTTP", "budget": {"tokens": 5000}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["budget"], json!({"tokens": 5000, "cost_usd": null}));
    assert_eq!(created["spent"]["tokens"], 0);
    let ticket = created["id"].as_str().expect("an id").to_owned();
    let path = format!("/api/v1/tickets/{ticket}/budget");

    // anyone but an operator is forbidden; a malformed budget is named
    let (status, body) = send(
        api.request(Method::PUT, &path)
            .json(&json!({"cost_usd": 3})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = send(
        api.request_as(http::OPERATOR_TOKEN, Method::PUT, &path)
            .json(&json!({"cost_usd": 0})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("cost_usd"), "{body}");
    let (status, set) = send(
        api.request_as(http::OPERATOR_TOKEN, Method::PUT, &path)
            .json(&json!({"cost_usd": 3})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    let set: TicketBudgetSet = serde_json::from_value(set).expect("ticket.budget.set data");
    assert_eq!(
        (set.budget.tokens, set.budget.cost_usd, set.set_by.as_str()),
        (Some(5000), Some(3.0), http::OPERATOR)
    );
    let published = app
        .events
        .wait_for_event(|event| event.is_about("ticket.budget.set", &ticket))
        .await;
    assert_eq!(published.actor, http::OPERATOR);

    // an agent works on it and reports usage; the spend shows by phase, agent and task
    api.moved(&ticket, "PHASE_REQUIREMENTS").await;
    let (status, claimed) = api
        .post("/api/v1/tasks/claim", json!({"ticket_id": ticket}))
        .await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    let task = claimed["task_id"].as_str().expect("a task").to_owned();
    let (status, body) = api
        .post(
            &format!("/api/v1/tasks/{task}/heartbeat"),
            json!({"usage": {"input_tokens": 3000, "output_tokens": 1100, "cost_usd": 0.5}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // 4,100 of 5,000 tokens: past 80 %
    let warning = app
        .events
        .wait_for_event(|event| event.is_about("budget.warning", &ticket))
        .await;
    let warning: BudgetAlert = warning.data();
    assert_eq!(warning.limit, BudgetLimit::Tokens);
    assert_eq!(warning.spent, Amount::Tokens(4100));
    let (status, usage) = api.get(&format!("/api/v1/tickets/{ticket}/usage")).await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(usage["budget"]["tokens"], 5000);
    assert_eq!(usage["budget"]["cost_usd"], 3.0);
    assert_eq!(usage["budget"]["set_by"], http::OPERATOR);
    let spent =
        json!({"input_tokens": 3000, "output_tokens": 1100, "tokens": 4100, "cost_usd": 0.5});
    assert_eq!(usage["spent"], spent);
    assert_eq!(usage["by_phase"]["PHASE_REQUIREMENTS"], spent);
    assert_eq!(usage["by_agent"][http::AGENT], spent);
    assert_eq!(usage["by_task"][&task]["task_type"], "analyze_requirements");
    assert_eq!(usage["by_task"][&task]["tokens"], 4100);
    let (status, body) = api
        .get(&format!("/api/v1/tickets/{}/usage", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    api.stop().await;
    app.shutdown().await;
}
