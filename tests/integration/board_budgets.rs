//! Budgets on the board in a real browser (the harness of `board`): a card's spend bar against
//! each limit of its ticket's budget, which follows the agents' reports live (below 80 %, from
//! 80 %, and at 100 % in BLOCKED, where the service moves a ticket that used its budget up); a
//! card without a budget that shows what it spent as text; a ticket page's usage (its budget, who
//! set it, the spend in all and by phase, agent and task); and each agent's spend today against
//! its daily budget on the Agents page. Everything is set up through the API: an operator's
//! budgets, an agent registered with a daily budget, claims and heartbeats reporting usage.

use phaseflow::domain::Phase;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::board::{start_api, Browser, PAGE_WAIT};
use crate::common::http::{send, Api, AGENT, OPERATOR, OPERATOR_TOKEN, TOKEN};
use crate::common::{Requests, TestApp};

/// The agent registered with a daily budget of [`DAILY_BUDGET`] US dollars.
const DEV: &str = "dev-budget";
const DAILY_BUDGET: f64 = 2.0;

fn column(phase: &str) -> String {
    format!(r#"section.column[data-phase="{phase}"]"#)
}

fn card(phase: &str, ticket: &str) -> String {
    format!(
        r#"{} article.card[data-ticket-id="{ticket}"]"#,
        column(phase)
    )
}

/// The spend bar of one limit (`tokens`, `cost_usd`) of a card.
fn bar(card: &str, limit: &str) -> String {
    format!(r#"{card} .card-spend .spend[data-limit="{limit}"]"#)
}

/// Asks `path` with `method` as `token` (with a JSON body); the status must be `expected`.
async fn call(
    api: &Api,
    token: &str,
    method: Method,
    path: &str,
    body: Value,
    expected: StatusCode,
) -> Value {
    let (status, answer) = send(api.request_as(token, method.clone(), path).json(&body)).await;
    assert_eq!(status, expected, "{method} {path}: {answer}");
    answer
}

/// The operator sets a ticket's budget.
async fn set_budget(api: &Api, ticket: &str, budget: Value) {
    let path = format!("/api/v1/tickets/{ticket}/budget");
    call(
        api,
        OPERATOR_TOKEN,
        Method::PUT,
        &path,
        budget,
        StatusCode::OK,
    )
    .await;
}

/// The agent of `token` claims `task` of `ticket` for an hour.
async fn claim(api: &Api, token: &str, ticket: &str, task: &str) {
    let body = json!({"ticket_id": ticket, "task_id": task, "lease_seconds": 3600});
    let claimed = call(
        api,
        token,
        Method::POST,
        "/api/v1/tasks/claim",
        body,
        StatusCode::OK,
    )
    .await;
    assert_eq!(claimed["task_id"], json!(task), "{claimed}");
}

/// A heartbeat of the agent of `token` on `task`, reporting `usage`.
async fn report(api: &Api, token: &str, task: &str, usage: Value) {
    let path = format!("/api/v1/tasks/{task}/heartbeat");
    let body = json!({"usage": usage});
    call(api, token, Method::POST, &path, body, StatusCode::OK).await;
}

/// What the page shows of a spend bar: level, classes, fill (from the `<meter>`), text and share.
async fn bar_state(browser: &Browser, css: &str) -> Value {
    browser
        .js(
            "const s = document.querySelector(arguments[0]);
             if (!s) return null;
             const m = s.querySelector('meter.spend-bar');
             return {level: s.dataset.level, classes: s.className, percent: s.dataset.percent,
               value: m && m.value, max: m && m.max,
               text: s.querySelector('.spend-text').textContent,
               share: s.querySelector('.spend-share').textContent};",
            vec![json!(css)],
        )
        .await
}

/// Waits until the spend bar at `css` shows `level` with `text`.
async fn wait_for_bar(browser: &Browser, what: &str, css: &str, level: &str, text: &str) {
    browser
        .wait_js(
            what,
            "const s = document.querySelector(arguments[0]);
             return s !== null && s.dataset.level === arguments[1] &&
               s.querySelector('.spend-text').textContent === arguments[2]",
            vec![json!(css), json!(level), json!(text)],
            PAGE_WAIT,
        )
        .await;
}

/// The cells of a usage table's row (`tr` matching `row`), as text.
async fn cells(browser: &Browser, row: &str) -> Vec<String> {
    let texts = browser
        .js(
            "const tr = document.querySelector(arguments[0]);
             return tr ? [...tr.children].map((td) => td.textContent) : null",
            vec![json!(row)],
        )
        .await;
    serde_json::from_value(texts.clone()).unwrap_or_else(|_| panic!("no row {row}: {texts}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_show_as_spend_bars_on_cards_a_tickets_usage_and_agents_spend_today() {
    let mut app = TestApp::spawn().await;
    let api = start_api(&mut app).await;

    // an agent with a daily budget (the operator registers it and gets its token)
    let registered = call(
        &api,
        OPERATOR_TOKEN,
        Method::POST,
        "/api/v1/agents",
        json!({"agent_id": DEV, "roles": ["*"], "daily_cost_usd": DAILY_BUDGET}),
        StatusCode::CREATED,
    )
    .await;
    let dev_token = registered["token"].as_str().expect("a token").to_owned();

    // four tickets: 1,000 tokens (to be warned), $1 (to be used up), both limits given at
    // creation (nothing spent), and none (spend without a budget)
    let warned = app.ticket_in(Phase::Implementation).await;
    let used_up = app.ticket_in(Phase::Implementation).await;
    let free = app.ticket_in(Phase::Implementation).await;
    set_budget(&api, &warned.ticket, json!({"tokens": 1000})).await;
    set_budget(&api, &used_up.ticket, json!({"cost_usd": 1.0})).await;
    let created = call(
        &api,
        TOKEN,
        Method::POST,
        "/api/v1/tickets",
        json!({"title": "Budgeted from the start", "budget": {"tokens": 5000, "cost_usd": 2.5}}),
        StatusCode::CREATED,
    )
    .await;
    let fresh = created["id"].as_str().expect("the ticket's id").to_owned();

    let browser = Browser::start(&api.base, "budgets").await;
    browser.goto("/").await;
    browser.sign_in(OPERATOR_TOKEN, OPERATOR).await;
    let implementation = "PHASE_IMPLEMENTATION";
    let warned_tokens = bar(&card(implementation, &warned.ticket), "tokens");
    wait_for_bar(
        &browser,
        "the warned ticket's bar, nothing spent",
        &warned_tokens,
        "ok",
        "0 / 1,000 tokens",
    )
    .await;
    browser
        .wait_js(
            "the live stream",
            "return document.getElementById('live-status').textContent === 'live'",
            vec![],
            PAGE_WAIT,
        )
        .await;

    // a budget given at creation: one bar per limit, nothing used
    let fresh_card = card("PHASE_BACKLOG", &fresh);
    let tokens = bar_state(&browser, &bar(&fresh_card, "tokens")).await;
    assert_eq!(tokens["level"], "ok", "{tokens}");
    assert_eq!(tokens["text"], "0 / 5,000 tokens", "{tokens}");
    assert_eq!(
        (&tokens["value"], &tokens["max"]),
        (&json!(0), &json!(5000))
    );
    let cost = bar_state(&browser, &bar(&fresh_card, "cost_usd")).await;
    assert_eq!(cost["text"], "$0.00 / $2.50", "{cost}");
    assert_eq!(cost["share"], "0 %", "{cost}");
    assert_eq!(
        browser
            .count(&format!("{} .spend", card(implementation, &free.ticket)))
            .await,
        0,
        "no budget, nothing spent: no bar"
    );
    assert_eq!(
        browser
            .count(&format!(
                "{} .card-spend",
                card(implementation, &free.ticket)
            ))
            .await,
        0,
        "and nothing about spend"
    );

    // 88 % of the tokens, reported by two agents: the bar turns amber, live
    let code = warned.task("implement_feature").to_owned();
    let tests = warned.task("write_unit_tests").to_owned();
    claim(&api, &dev_token, &warned.ticket, &code).await;
    claim(&api, TOKEN, &warned.ticket, &tests).await;
    report(
        &api,
        &dev_token,
        &code,
        json!({"input_tokens": 500, "output_tokens": 350, "cost_usd": 0.4}),
    )
    .await;
    report(
        &api,
        TOKEN,
        &tests,
        json!({"input_tokens": 20, "output_tokens": 10, "cost_usd": 0.05}),
    )
    .await;
    wait_for_bar(
        &browser,
        "the warned ticket's bar at 88 %",
        &warned_tokens,
        "warning",
        "880 / 1,000 tokens",
    )
    .await;
    let state = bar_state(&browser, &warned_tokens).await;
    assert_eq!(state["percent"], "88", "{state}");
    assert_eq!(state["share"], "88 %", "{state}");
    assert_eq!(
        (&state["value"], &state["max"]),
        (&json!(880), &json!(1000))
    );
    let classes = state["classes"].as_str().unwrap_or_default();
    assert!(classes.split(' ').any(|c| c == "spend-warning"), "{state}");
    assert_eq!(
        browser
            .count(&bar(&card(implementation, &warned.ticket), "cost_usd"))
            .await,
        0,
        "no cost limit, no cost bar"
    );

    // spend without a budget: text only
    let free_code = free.task("implement_feature").to_owned();
    claim(&api, TOKEN, &free.ticket, &free_code).await;
    report(
        &api,
        TOKEN,
        &free_code,
        json!({"input_tokens": 100, "output_tokens": 20, "cost_usd": 0.01}),
    )
    .await;
    let free_note = format!(
        "{} .card-spend .spend-note",
        card(implementation, &free.ticket)
    );
    browser
        .wait_for("the spend of the free ticket", &free_note)
        .await;
    assert_eq!(browser.text(&free_note).await, "120 tokens · $0.01 spent");
    assert_eq!(
        browser
            .count(&format!("{} meter", card(implementation, &free.ticket)))
            .await,
        0
    );

    // $0.60 of $1: below 80 %; then $1.20: used up, and the service blocks the ticket
    let used_code = used_up.task("implement_feature").to_owned();
    claim(&api, &dev_token, &used_up.ticket, &used_code).await;
    report(&api, &dev_token, &used_code, json!({"cost_usd": 0.6})).await;
    let used_cost = bar(&card(implementation, &used_up.ticket), "cost_usd");
    wait_for_bar(
        &browser,
        "the used-up ticket's bar at 60 %",
        &used_cost,
        "ok",
        "$0.60 / $1.00",
    )
    .await;
    report(&api, &dev_token, &used_code, json!({"cost_usd": 0.6})).await;
    let blocked_cost = bar(&card("PHASE_BLOCKED", &used_up.ticket), "cost_usd");
    wait_for_bar(
        &browser,
        "the used-up ticket's bar in BLOCKED",
        &blocked_cost,
        "exceeded",
        "$1.20 / $1.00",
    )
    .await;
    let state = bar_state(&browser, &blocked_cost).await;
    assert_eq!(state["percent"], "100", "the bar is full: {state}");
    assert_eq!(state["share"], "120 %", "{state}");
    assert_eq!((&state["value"], &state["max"]), (&json!(1), &json!(1)));
    let classes = state["classes"].as_str().unwrap_or_default();
    assert!(classes.split(' ').any(|c| c == "spend-exceeded"), "{state}");
    assert_eq!(
        browser.count(&card(implementation, &used_up.ticket)).await,
        0,
        "the card left IMPLEMENTATION"
    );
    // the colours differ by level
    let fills = browser
        .js(
            "return [arguments[0], arguments[1], arguments[2]].map((css) =>
               getComputedStyle(document.querySelector(css)).getPropertyValue('--spend-fill').trim())",
            vec![
                json!(bar(&fresh_card, "tokens")),
                json!(warned_tokens),
                json!(blocked_cost),
            ],
        )
        .await;
    let fills: Vec<String> = serde_json::from_value(fills).expect("three colours");
    assert!(
        fills[0] != fills[1] && fills[1] != fills[2] && fills[0] != fills[2],
        "{fills:?}"
    );
    browser.dismiss_flash().await;
    browser.screenshot("budgets-board").await;
    browser
        .js(
            "document.querySelector(arguments[0]).scrollIntoView()",
            vec![json!(column("PHASE_BLOCKED"))],
        )
        .await;
    browser.screenshot("budgets-board-blocked").await;

    // the warned ticket's page: its budget, who set it, and the spend by phase, agent and task
    browser
        .click(&format!(
            "{} a.card-title",
            card(implementation, &warned.ticket)
        ))
        .await;
    browser
        .wait_for(
            "the usage by task",
            &format!(r#"#usage table#usage-by-task tr[data-task-id="{tests}"]"#),
        )
        .await;
    assert_eq!(
        browser.text("#usage .usage-budget-tokens").await,
        "1,000 tokens"
    );
    assert_eq!(browser.text("#usage .usage-budget-cost").await, "no limit");
    let set = browser.text("#usage .usage-budget-set").await;
    assert!(set.starts_with(&format!("set by {OPERATOR} at ")), "{set}");
    assert_eq!(
        browser.text("#usage .usage-spent").await,
        "880 tokens (520 in, 360 out) · $0.45"
    );
    let meter = bar_state(&browser, r#"#usage .spend[data-limit="tokens"]"#).await;
    assert_eq!(
        (&meter["level"], &meter["text"]),
        (&json!("warning"), &json!("880 / 1,000 tokens"))
    );
    let workflow = api.read("/api/v1/workflow").await;
    let implementation_name = workflow["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .find(|phase| phase["phase_id"] == implementation)
        .and_then(|phase| phase["name"].as_str())
        .expect("the phase's name")
        .to_owned();
    let implementation_name = implementation_name.as_str();
    assert_eq!(
        cells(
            &browser,
            r#"#usage-by-phase tbody tr[data-phase="PHASE_IMPLEMENTATION"]"#
        )
        .await,
        [implementation_name, "520", "360", "880", "$0.45"]
    );
    assert_eq!(
        browser.count("#usage-by-phase tbody tr").await,
        1,
        "one phase"
    );
    assert_eq!(
        cells(
            &browser,
            &format!(r#"#usage-by-agent tbody tr[data-agent-id="{DEV}"]"#)
        )
        .await,
        [DEV, "500", "350", "850", "$0.40"]
    );
    assert_eq!(
        cells(
            &browser,
            &format!(r#"#usage-by-agent tbody tr[data-agent-id="{AGENT}"]"#)
        )
        .await,
        [AGENT, "20", "10", "30", "$0.05"]
    );
    assert_eq!(browser.count("#usage-by-agent tbody tr").await, 2);
    assert_eq!(
        cells(
            &browser,
            &format!(r#"#usage-by-task tbody tr[data-task-id="{code}"]"#)
        )
        .await,
        [
            "implement_feature",
            implementation_name,
            "500",
            "350",
            "850",
            "$0.40"
        ]
    );
    assert_eq!(
        cells(
            &browser,
            &format!(r#"#usage-by-task tbody tr[data-task-id="{tests}"]"#)
        )
        .await,
        [
            "write_unit_tests",
            implementation_name,
            "20",
            "10",
            "30",
            "$0.05"
        ]
    );
    assert_eq!(browser.count("#usage-by-task tbody tr").await, 2);
    for table in ["usage-by-phase", "usage-by-agent", "usage-by-task"] {
        let total = cells(&browser, &format!("#{table} tfoot tr")).await;
        assert_eq!(
            total.iter().rev().take(4).rev().collect::<Vec<_>>(),
            ["520", "360", "880", "$0.45"],
            "{table}: {total:?}"
        );
    }
    browser.dismiss_flash().await;
    browser
        .js("document.getElementById('usage').scrollIntoView()", vec![])
        .await;
    browser.screenshot("budgets-ticket").await;

    // a budget given at creation says so
    browser.goto(&format!("/#/tickets/{fresh}")).await;
    browser
        .wait_js(
            "the fresh ticket's usage",
            "const n = document.querySelector('#usage .usage-budget-set');
             return n !== null && n.textContent === 'from creation'",
            vec![],
            PAGE_WAIT,
        )
        .await;
    assert_eq!(browser.text("#usage .usage-budget-cost").await, "$2.50");
    assert_eq!(
        browser.text("#usage .empty-note").await,
        "No usage reported yet."
    );

    // the Agents page: the agent's $1.60 of its $2 today (80 %: amber); the others' spend alone
    browser.click(r##"nav a[href="#/agents"]"##).await;
    let dev_spend = format!(r#"tr.agent[data-agent-id="{DEV}"] .agent-spend .spend"#);
    wait_for_bar(
        &browser,
        "the agent's spend today",
        &dev_spend,
        "warning",
        "$1.60 / $2.00 today",
    )
    .await;
    let dev_tokens = format!(r#"tr.agent[data-agent-id="{DEV}"] .agent-spend .spend-tokens"#);
    assert_eq!(browser.text(&dev_tokens).await, "850 tokens");
    let other = format!(r#"tr.agent[data-agent-id="{AGENT}"] .agent-spend"#);
    assert_eq!(
        browser.text(&format!("{other} .spend-text")).await,
        "$0.06 today"
    );
    assert_eq!(
        browser.text(&format!("{other} .spend-tokens")).await,
        "150 tokens"
    );
    assert_eq!(
        browser.count(&format!("{other} .spend")).await,
        0,
        "no daily budget: no bar"
    );
    let operator = format!(r#"tr.agent[data-agent-id="{OPERATOR}"] .agent-spend .spend-text"#);
    assert_eq!(browser.text(&operator).await, "$0.00 today");
    browser.dismiss_flash().await;
    browser.screenshot("budgets-agents").await;
    browser.assert_no_script_errors().await;

    browser.close().await;
    api.stop().await;
    app.shutdown().await;
}
