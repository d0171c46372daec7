//! The claim limit: an agent holds at most `agents.default_max_claims` live leases at once
//! (3 by default). Against Postgres alone, with one agent's claims racing across tickets: the
//! agent's lock, not the tickets', is what keeps the count.

use std::collections::HashSet;
use std::sync::Arc;

use phaseflow::domain::Phase;
use phaseflow::protocol::RejectionCode;
use serde_json::json;
use tokio::task::JoinSet;

use crate::common::rules::Rules;
use crate::common::{Outcome, Requests};

/// Live leases `agent` holds, as stored.
async fn held_by(rules: &Rules, agent: &str) -> i64 {
    sqlx::query_scalar(
        "select count(*) from tasks \
         where status = 'claimed' and claimed_by = $1 and lease_expires_at > now()",
    )
    .bind(agent)
    .fetch_one(&rules.pool)
    .await
    .expect("the leases")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_at_its_limit_claims_again_once_it_gives_a_lease_up() {
    let rules = Rules::new().await;
    let mut tickets = Vec::new();
    for _ in 0..4 {
        tickets.push(rules.ticket_in(Phase::Requirements).await);
    }
    let mut held = Vec::new();
    for placed in &tickets[..3] {
        let claimed = rules
            .claim("agent-1", Some(&placed.ticket), json!({}))
            .await
            .succeeded();
        held.push(claimed.data);
    }

    let fourth = rules
        .claim("agent-1", Some(&tickets[3].ticket), json!({}))
        .await
        .rejected();
    let another_agent = rules
        .claim("agent-2", Some(&tickets[3].ticket), json!({}))
        .await;

    fourth.assert(
        "task.claim.rejected",
        RejectionCode::ClaimLimitReached,
        Some(&tickets[3].ticket),
    );
    assert!(
        fourth
            .reasons()
            .contains("holds 3 live leases and may hold 3"),
        "{fourth}"
    );
    assert!(
        matches!(another_agent, Outcome::Succeeded(_)),
        "the limit is per agent: {}",
        another_agent.raw()
    );
    let given_back = &held[0];
    rules
        .release(
            "agent-1",
            &given_back.ticket_id.to_string(),
            json!({"task_id": given_back.task_id, "claim_id": given_back.claim_id}),
        )
        .await
        .succeeded();
    rules
        .claim("agent-1", Some(&tickets[0].ticket), json!({}))
        .await
        .succeeded();
    assert_eq!(held_by(&rules, "agent-1").await, 3);
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agent_s_claims_racing_over_many_tickets_never_exceed_its_limit() {
    let rules = Arc::new(Rules::new().await);
    let mut tickets = Vec::new();
    for _ in 0..8 {
        tickets.push(rules.ticket_in(Phase::Requirements).await.ticket);
    }
    let mut claims = JoinSet::new();
    for ticket in tickets {
        let rules = rules.clone();
        claims.spawn(async move { rules.claim("agent-1", Some(&ticket), json!({})).await });
    }
    let mut claimed = HashSet::new();
    let mut refused = 0;
    for outcome in claims.join_all().await {
        match outcome {
            Outcome::Succeeded(event) => {
                claimed.insert(event.data.task_id);
            }
            Outcome::Rejected(rejected) => {
                assert_eq!(
                    rejected.data.code,
                    RejectionCode::ClaimLimitReached,
                    "{rejected}"
                );
                refused += 1;
            }
        }
    }
    assert_eq!(claimed.len(), 3, "exactly the limit was granted");
    assert_eq!(refused, 5);
    assert_eq!(held_by(&rules, "agent-1").await, 3);
    Arc::into_inner(rules)
        .expect("no claim left running")
        .shutdown()
        .await;
}
