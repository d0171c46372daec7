//! The board's Agents page in a real browser (the harness of `board`): every agent with its
//! roles, limit and live claims, a stalled claim marked as such with how long it made no
//! progress, agent input shown as text; and an operator's revocation of an agent's tokens, asked
//! for in the page, refused by the API at once and shown in the record, which an agent that is
//! not an operator is not offered.

use phaseflow::domain::Phase;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::board::{start_api, Browser, PAGE_WAIT};
use crate::common::factory::TITLE;
use crate::common::http::{send, Api, AGENT, OPERATOR, OPERATOR_TOKEN, TOKEN};
use crate::common::{uuid, Requests, TestApp};

/// A role no agent would have: markup, which the page must show as text.
const MARKUP_ROLE: &str = r#"<img src=x onerror="document.body.dataset.pwned=1">"#;

/// Registers an agent straight in the test's database (no record entry, no token).
async fn insert_agent(app: &TestApp, agent_id: &str, roles: &[&str], max_claims: i32) {
    let roles: Vec<String> = roles.iter().map(|role| (*role).to_owned()).collect();
    sqlx::query(
        "insert into agents (agent_id, roles, max_claims, created_by) values ($1, $2, $3, 'test')",
    )
    .bind(agent_id)
    .bind(&roles)
    .bind(max_claims)
    .execute(&app.pool)
    .await
    .expect("the agent registers");
}

/// A ticket put into `phase` whose `task_type` task `agent` claims for an hour; returns the
/// ticket and the task.
async fn claimed_by(app: &TestApp, agent: &str, phase: Phase, task_type: &str) -> (String, String) {
    let placed = app.ticket_in(phase).await;
    let task = placed.task(task_type).to_owned();
    app.claim(
        agent,
        Some(&placed.ticket),
        json!({"task_id": task, "lease_seconds": 3600}),
    )
    .await
    .succeeded();
    (placed.ticket, task)
}

/// The agent's row on the Agents page.
fn row(agent_id: &str) -> String {
    format!(r#"table tr.agent[data-agent-id="{agent_id}"]"#)
}

/// A claim of the agent's row.
fn claim_of(agent_id: &str, task: &str) -> String {
    format!(r#"{} li.live-claim[data-task-id="{task}"]"#, row(agent_id))
}

/// `GET /api/v1/me` with `token`: the status and the body.
async fn me(api: &Api, token: &str) -> (StatusCode, Value) {
    send(api.request_as(token, Method::GET, "/api/v1/me")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_page_lists_agents_with_their_live_and_stalled_claims() {
    let mut app = TestApp::spawn().await;
    let api = start_api(&mut app).await;
    insert_agent(&app, "analyst-ana", &["analyst"], 2).await;
    insert_agent(&app, "architect-arlo", &["architect", "reviewer"], 1).await;
    insert_agent(&app, "odd-otto", &[MARKUP_ROLE], 3).await;
    let (_, live_task) = claimed_by(
        &app,
        "analyst-ana",
        Phase::Requirements,
        "analyze_requirements",
    )
    .await;
    let (stuck_ticket, stuck_task) =
        claimed_by(&app, "architect-arlo", Phase::Design, "design_architecture").await;
    sqlx::query(
        "update tasks set stalled_at = now(), last_progress_at = now() - interval '20 minutes' \
         where id = $1",
    )
    .bind(uuid(&stuck_task))
    .execute(&app.pool)
    .await
    .expect("the claim stalls");
    // the API says so too: the page is checked against a listing that holds both
    let listing = api.read("/api/v1/agents").await;
    let stalled: Vec<(String, bool)> = listing["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .flat_map(|agent| {
            let claims = agent["live_claims"].as_array().cloned().unwrap_or_default();
            claims.into_iter().map(|claim| {
                (
                    claim["task_type"].as_str().unwrap_or_default().to_owned(),
                    claim["stalled"] == true,
                )
            })
        })
        .collect();
    assert_eq!(
        stalled,
        [
            ("analyze_requirements".to_owned(), false),
            ("design_architecture".to_owned(), true)
        ],
        "{listing}"
    );

    let browser = Browser::start(&api.base, "agents").await;
    browser.goto("/#/agents").await;
    browser.sign_in(OPERATOR_TOKEN, OPERATOR).await;
    browser
        .wait_for("the live claim", &claim_of("analyst-ana", &live_task))
        .await;
    browser
        .wait_for(
            "the stalled claim",
            &claim_of("architect-arlo", &stuck_task),
        )
        .await;
    let current = browser
        .js(
            "return document.querySelector('.mainnav a[aria-current=page]')?.getAttribute('href')",
            vec![],
        )
        .await;
    assert_eq!(current, json!("#/agents"), "the navigation marks the page");

    // every agent: the registered ones and the configured tokens' (not registered)
    for agent in ["analyst-ana", "architect-arlo", "odd-otto", AGENT, OPERATOR] {
        assert_eq!(browser.count(&row(agent)).await, 1, "{agent} listed once");
    }
    assert_eq!(
        browser
            .text(&format!("{} .roles", row("analyst-ana")))
            .await,
        "analyst"
    );
    let roles = browser
        .js(
            "return [...document.querySelectorAll(arguments[0] + ' .roles .badge')].map((b) => b.textContent)",
            vec![json!(row("architect-arlo"))],
        )
        .await;
    assert_eq!(roles, json!(["architect", "reviewer"]));
    assert_eq!(
        browser
            .text(&format!("{} .max-claims", row("analyst-ana")))
            .await,
        "2"
    );
    assert_eq!(
        browser
            .text(&format!("{} .max-claims", row("architect-arlo")))
            .await,
        "1"
    );
    assert_eq!(
        browser
            .text(&format!("{} .registered", row("analyst-ana")))
            .await,
        "registered"
    );
    assert_eq!(
        browser.text(&format!("{} .registered", row(AGENT))).await,
        "not registered"
    );
    assert_eq!(
        browser.text(&format!("{} .operator", row(OPERATOR))).await,
        "operator"
    );
    assert_eq!(
        browser
            .text(&format!("{} .operator", row("analyst-ana")))
            .await,
        "no"
    );
    assert_eq!(
        browser
            .text(&format!("{} .tasks-completed", row("analyst-ana")))
            .await,
        "0"
    );

    // the live claim: its task linking to its ticket, its lease, its last progress; not stalled
    let live = claim_of("analyst-ana", &live_task);
    assert_eq!(browser.count(&format!("{live}.stalled")).await, 0);
    assert_eq!(browser.count(&format!("{live} .stalled-badge")).await, 0);
    assert_eq!(
        browser.text(&format!("{live} a.claim-task")).await,
        "analyze_requirements"
    );
    let lease = browser.text(&format!("{live} .claim-lease")).await;
    assert!(lease.starts_with("lease ends in "), "{lease}");
    let progress = browser.text(&format!("{live} .claim-progress")).await;
    assert!(
        progress == "last progress just now" || progress.ends_with(" s ago"),
        "{progress}"
    );

    // the stalled claim: marked, with how long it has made no progress
    let stuck = claim_of("architect-arlo", &stuck_task);
    assert_eq!(browser.count(&format!("{stuck}.stalled")).await, 1);
    assert_eq!(
        browser.text(&format!("{stuck} .stalled-badge")).await,
        "stalled"
    );
    let progress = browser.text(&format!("{stuck} .claim-progress")).await;
    assert_eq!(progress, "no progress since 20 min ago");
    assert_eq!(
        browser.count("li.live-claim.stalled").await,
        1,
        "only one claim is stalled"
    );
    assert_eq!(browser.count("li.live-claim").await, 2);

    // agent input is text: the markup role is shown as written, and nothing of it ran
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        browser.text(&format!("{} .roles", row("odd-otto"))).await,
        MARKUP_ROLE
    );
    assert_eq!(browser.count("#main img").await, 0);
    assert_eq!(
        browser
            .js("return typeof document.body.dataset.pwned", vec![])
            .await,
        json!("undefined")
    );

    // an operator may revoke the registered agents' tokens; the others have none
    for agent in ["analyst-ana", "architect-arlo", "odd-otto"] {
        let button = format!("{} button.revoke-tokens", row(agent));
        assert_eq!(browser.count(&button).await, 1, "{agent}");
    }
    for agent in [AGENT, OPERATOR] {
        let button = format!("{} button.revoke-tokens", row(agent));
        assert_eq!(browser.count(&button).await, 0, "{agent} is not registered");
    }
    browser.dismiss_flash().await;
    browser.screenshot("agents").await;

    // the stalled claim's task leads to its ticket
    browser.click(&format!("{stuck} a.claim-task")).await;
    browser
        .wait_js(
            "the stalled claim's ticket",
            "const h = document.querySelector('h1#ticket-title');
             return location.hash === arguments[0] && h && h.textContent === arguments[1]",
            vec![json!(format!("#/tickets/{stuck_ticket}")), json!(TITLE)],
            PAGE_WAIT,
        )
        .await;
    browser.assert_no_script_errors().await;

    browser.close().await;
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_revokes_an_agents_tokens_after_confirming_and_the_record_shows_it() {
    let mut app = TestApp::spawn().await;
    let api = start_api(&mut app).await;
    let agent = "dev-dana";
    insert_agent(&app, agent, &["developer"], 2).await;
    let (status, issued) = send(api.request_as(
        OPERATOR_TOKEN,
        Method::POST,
        &format!("/api/v1/agents/{agent}/tokens"),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let token = issued["token"].as_str().expect("the token").to_owned();
    let (status, body) = me(&api, &token).await;
    assert_eq!(
        (status, body["agent"].as_str()),
        (StatusCode::OK, Some(agent)),
        "{body}"
    );
    let live_tokens = || async {
        let live: i64 = sqlx::query_scalar(
            "select count(*) from agent_tokens where agent_id = $1 and revoked_at is null",
        )
        .bind(agent)
        .fetch_one(&app.pool)
        .await
        .expect("the tokens");
        live
    };
    let issued_entry = format!(
        r#"#agent-record tr.record-entry[data-agent-id="{agent}"][data-action="token issued"]"#
    );
    let revoked_entry = format!(
        r#"#agent-record tr.record-entry[data-agent-id="{agent}"][data-action="tokens revoked"]"#
    );
    let revoke = format!("{} button.revoke-tokens", row(agent));
    let confirm = format!("{} .revoke-confirm button.confirm-revoke", row(agent));

    // an agent that is not an operator sees the agents and the record, and no Revoke
    let browser = Browser::start(&api.base, "agents-revoke").await;
    browser.goto("/#/agents").await;
    browser.sign_in(TOKEN, AGENT).await;
    browser.wait_for("the agent's row", &row(agent)).await;
    browser
        .wait_for("the token issued, on the record", &issued_entry)
        .await;
    assert_eq!(
        browser.text(&format!("{issued_entry} .record-actor")).await,
        OPERATOR
    );
    assert_eq!(
        browser.count("button.revoke-tokens").await,
        0,
        "an agent has no Revoke"
    );
    assert_eq!(
        browser.count("#agents th").await,
        9,
        "and no Actions column"
    );

    // the operator: Revoke tokens… asks first; Cancel leaves the tokens alone
    browser.click("button#sign-out").await;
    browser.sign_in(OPERATOR_TOKEN, OPERATOR).await;
    browser.click(r##"nav a[href="#/agents"]"##).await;
    browser.wait_for("the Revoke button", &revoke).await;
    assert_eq!(
        browser.count("button.revoke-tokens").await,
        1,
        "only registered agents"
    );
    assert_eq!(
        browser.count(".revoke-confirm").await,
        0,
        "no question before the click"
    );
    browser.click(&revoke).await;
    browser.wait_for("the confirmation", &confirm).await;
    let question = browser
        .text(&format!("{} .revoke-question", row(agent)))
        .await;
    assert!(question.contains(agent), "{question}");
    assert_eq!(live_tokens().await, 1, "asking revokes nothing");
    browser
        .click(&format!("{} button.cancel-revoke", row(agent)))
        .await;
    browser
        .wait_js(
            "the confirmation gone",
            "return document.querySelector('.revoke-confirm') === null",
            vec![],
            PAGE_WAIT,
        )
        .await;
    assert_eq!(live_tokens().await, 1, "cancelled: nothing revoked");
    assert_eq!(browser.count(&revoked_entry).await, 0);

    // confirmed: the tokens are revoked, the flash says how many, the record shows it
    browser.click(&revoke).await;
    browser.click(&confirm).await;
    browser
        .wait_js(
            "the flash and the revocation on the record",
            "const flash = document.querySelector('#flash.flash-ok');
             return flash !== null && flash.textContent.includes(arguments[0]) &&
               document.querySelector(arguments[1]) !== null",
            vec![
                json!(format!("Revoked 1 token of {agent}.")),
                json!(revoked_entry),
            ],
            PAGE_WAIT,
        )
        .await;
    assert_eq!(
        browser
            .text(&format!("{revoked_entry} .record-actor"))
            .await,
        OPERATOR
    );
    let newest = browser
        .js(
            "return document.querySelector('#agent-record tr.record-entry')?.dataset.action",
            vec![],
        )
        .await;
    assert_eq!(newest, json!("tokens revoked"), "newest first");
    assert_eq!(live_tokens().await, 0);
    let (status, body) = me(&api, &token).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the revoked token still works: {body}"
    );
    // the page stays usable, the Revoke button back (the agent is still registered)
    browser
        .wait_js(
            "the Revoke button again",
            "const b = document.querySelector(arguments[0]);
             return b !== null && !b.disabled && b.textContent === 'Revoke tokens…'",
            vec![json!(revoke)],
            PAGE_WAIT,
        )
        .await;
    browser.dismiss_flash().await;
    browser.screenshot("agents-revoked").await;
    browser.assert_no_script_errors().await;

    browser.close().await;
    api.stop().await;
    app.shutdown().await;
}
