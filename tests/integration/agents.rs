//! Agents as records, through the real API and broker: an operator registers an agent and gets
//! its token once; the database holds only the token's hash; a revocation made through one API
//! process is refused by another within a second and ends the live stream the token opened;
//! non-operators are refused; and 20 registered agents with mixed roles and limits, claiming
//! through three worker replicas, get only tasks of their roles and never more than their limit.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use phaseflow::domain::Phase;
use phaseflow::protocol::events::TaskClaimed;
use phaseflow::protocol::RejectionCode;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::common::http::{send, Api, OPERATOR, OPERATOR_TOKEN};
use crate::common::requests::CLAIM;
use crate::common::{Outcome, Requests, TestApp};

/// An app with a worker whose APIs name [`OPERATOR`] an operator.
async fn app_with_operator() -> TestApp {
    let mut app = TestApp::spawn().await;
    app.settings.auth.operators = vec![OPERATOR.to_owned()];
    app
}

/// Registers an agent as the operator; returns the answer's body.
async fn register(api: &Api, body: Value) -> (StatusCode, Value) {
    send(
        api.request_as(OPERATOR_TOKEN, Method::POST, "/api/v1/agents")
            .json(&body),
    )
    .await
}

/// The tables of the app's database whose rows, read as text, hold `needle`.
async fn tables_holding(app: &TestApp, needle: &str) -> Vec<String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "select tablename from pg_tables where schemaname = 'public' order by tablename",
    )
    .fetch_all(&app.pool)
    .await
    .expect("the tables");
    let mut holding = Vec::new();
    for table in tables {
        let statement =
            format!("select count(*) from \"{table}\" as t where strpos(t::text, $1) > 0");
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(statement))
            .bind(needle)
            .fetch_one(&app.pool)
            .await
            .expect("the table reads");
        if rows > 0 {
            holding.push(table);
        }
    }
    holding
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_registers_an_agent_whose_token_is_shown_once_and_stored_as_a_hash() {
    let mut app = app_with_operator().await;
    let api = Api::start(&mut app).await;
    let (status, body) = register(
        &api,
        json!({"agent_id": "dev-1", "roles": ["developer", "tester"], "max_claims": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().expect("the token").to_owned();
    assert!(token.len() >= 40, "a long random secret: {token}");
    assert_eq!(body["agent"]["agent_id"], "dev-1");
    assert_eq!(body["agent"]["roles"], json!(["developer", "tester"]));
    assert_eq!(body["agent"]["max_claims"], 2);

    let (status, me) = send(api.request_as(&token, Method::GET, "/api/v1/me")).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["agent"], "dev-1");
    assert_eq!(me["registered"], true);

    // nowhere again: not in the listing, the agent's page, or any table
    for path in ["/api/v1/agents", "/api/v1/agents/dev-1"] {
        let (status, body) = send(api.request_as(&token, Method::GET, path)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(!body.to_string().contains(&token), "{path} shows the token");
        assert!(!body.to_string().contains("token_hash"), "{body}");
    }
    assert_eq!(tables_holding(&app, &token).await, Vec::<String>::new());
    assert_eq!(
        tables_holding(&app, &token[3..20]).await,
        Vec::<String>::new()
    );
    let hash: Vec<u8> = Sha256::digest(token.as_bytes()).to_vec();
    let stored: i64 = sqlx::query_scalar(
        "select count(*) from agent_tokens where agent_id = 'dev-1' and token_hash = $1",
    )
    .bind(&hash)
    .fetch_one(&app.pool)
    .await
    .expect("the tokens");
    assert_eq!(stored, 1, "only the hash is stored");

    let (status, body) = register(&api, json!({"agent_id": "dev-1", "roles": []})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("agent_exists"))
    );
    let (status, body) = register(
        &api,
        json!({"agent_id": "Dev 2", "roles": ["Bad Role"], "max_claims": 0}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let reasons = body["error"]["reasons"].to_string();
    for field in ["agent_id", "roles", "max_claims"] {
        assert!(reasons.contains(field), "{field}: {reasons}");
    }
    let (status, body) = send(
        api.request(Method::POST, "/api/v1/agents")
            .json(&json!({"agent_id": "sneaky", "roles": ["*"], "operator": true})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, _) = send(api.request(Method::DELETE, "/api/v1/agents/dev-1/tokens")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // a rotation: the old token stops working, the new one works
    let (status, body) = send(api.request_as(
        OPERATOR_TOKEN,
        Method::POST,
        "/api/v1/agents/dev-1/tokens?rotate=true",
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let rotated = body["token"].as_str().expect("a new token").to_owned();
    let (status, _) = send(api.request_as(&token, Method::GET, "/api/v1/me")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(api.request_as(&rotated, Method::GET, "/api/v1/me")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, listing) = send(api.request(Method::GET, "/api/v1/agents")).await;
    let actions: Vec<&str> = listing["record"]
        .as_array()
        .expect("the record")
        .iter()
        .map(|entry| entry["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        actions,
        [
            "token issued",
            "tokens revoked",
            "token issued",
            "registered"
        ],
        "{listing}"
    );
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_one_replica_is_refused_by_another_within_a_second() {
    let mut app = app_with_operator().await;
    let first = Api::start(&mut app).await;
    let second = Api::start(&mut app).await;
    let (status, body) = register(&first, json!({"agent_id": "watcher", "roles": []})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().expect("the token").to_owned();
    let mut stream = second
        .request_as(&token, Method::GET, "/api/v1/stream")
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(stream.status(), StatusCode::OK);
    let (status, _) = send(second.request_as(&token, Method::GET, "/api/v1/me")).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = send(first.request_as(
        OPERATOR_TOKEN,
        Method::DELETE,
        "/api/v1/agents/watcher/tokens",
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked"], 1);
    let revoked = Instant::now();
    let (status, body) = send(second.request_as(&token, Method::GET, "/api/v1/me")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(revoked.elapsed() < Duration::from_secs(1));

    // the stream the token opened ends: its body runs out
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.chunk().await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the live stream of a revoked token ended");
    first.stop().await;
    second.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_agents_with_mixed_roles_claiming_through_three_replicas_stay_in_their_lanes() {
    let mut app = TestApp::spawn().await;
    app.start_worker();
    app.start_worker();
    let lanes = ["analyst", "architect", "developer", "tester", "release"];
    let mut agents: HashMap<String, (Vec<String>, i64)> = HashMap::new();
    for index in 0..20 {
        let mut roles = vec![lanes[index % lanes.len()].to_owned()];
        if index % 7 == 0 {
            roles.push("developer".to_owned());
        }
        let max_claims = 1 + (index % 2) as i64;
        sqlx::query(
            "insert into agents (agent_id, roles, max_claims, created_by) values ($1, $2, $3, 'test')",
        )
        .bind(format!("agent-{index}"))
        .bind(&roles)
        .bind(max_claims as i32)
        .execute(&app.pool)
        .await
        .expect("the agent registers");
        agents.insert(format!("agent-{index}"), (roles, max_claims));
    }
    for phase in [
        Phase::Requirements,
        Phase::Design,
        Phase::Implementation,
        Phase::Testing,
    ] {
        for _ in 0..3 {
            app.ticket_in(phase).await;
        }
    }
    let mut requests = Vec::new();
    for round in 0..3 {
        for agent in agents.keys() {
            let id = Uuid::new_v4().to_string();
            app.publish(agent, &id, CLAIM, None, json!({"lease_seconds": 600}))
                .await;
            requests.push((agent.clone(), id, round));
        }
    }
    let mut claimed: Vec<(String, TaskClaimed)> = Vec::new();
    for (agent, request, _) in &requests {
        match app.outcome_of_request::<TaskClaimed>(request, CLAIM).await {
            Outcome::Succeeded(event) => claimed.push((agent.clone(), event.data)),
            Outcome::Rejected(rejected) => assert!(
                matches!(
                    rejected.data.code,
                    RejectionCode::NoTaskAvailable | RejectionCode::ClaimLimitReached
                ),
                "{rejected}"
            ),
        }
    }
    let distinct: HashSet<_> = claimed.iter().map(|(_, task)| task.task_id).collect();
    assert_eq!(distinct.len(), claimed.len(), "a task was claimed twice");
    // 3 tickets each: 1 claimable task in REQUIREMENTS, DESIGN and TESTING, 2 in IMPLEMENTATION
    assert_eq!(
        claimed.len(),
        15,
        "every claimable task went to an agent of its role"
    );
    let mut held: HashMap<&str, i64> = HashMap::new();
    for (agent, task) in &claimed {
        let (roles, _) = &agents[agent];
        let role = task.role.as_deref().expect("every shipped task has a role");
        assert!(
            roles.iter().any(|held| held == role),
            "{agent} {roles:?} got a {role} task"
        );
        *held.entry(agent.as_str()).or_default() += 1;
    }
    for (agent, count) in held {
        assert!(count <= agents[agent].1, "{agent} holds {count}");
    }
    // the workers' sweeps write when each agent was last seen
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let unseen: i64 =
            sqlx::query_scalar("select count(*) from agents where last_seen_at is null")
                .fetch_one(&app.pool)
                .await
                .expect("the agents");
        if unseen == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{unseen} agents never seen");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.shutdown().await;
}
