//! Roles and registered agents' limits, against Postgres alone: an agent claims only tasks that
//! need no role or one of its roles, a given task it lacks the role for is refused with the
//! reason `requires role <role>`, an agent nobody registered has every role (or, with
//! `agents.unregistered = refuse`, is refused outright), and a registered agent's own
//! `max_claims` replaces the default.

use phaseflow::domain::Phase;
use phaseflow::protocol::events::TaskClaimed;
use phaseflow::protocol::RejectionCode;
use phaseflow::workflow::{Registration, Unregistered};
use serde_json::json;

use crate::common::requests::CREATE;
use crate::common::rules::Rules;
use crate::common::{uuid, Requests};

/// Registers `agent` with `roles` and, when given, its own claim limit.
pub async fn register(rules: &Rules, agent: &str, roles: &[&str], max_claims: Option<u32>) {
    rules
        .workflow
        .define_agent(
            &Registration {
                agent_id: agent.to_owned(),
                roles: roles.iter().map(|role| role.to_string()).collect(),
                max_claims,
                operator: false,
                daily_cost_usd: None,
            },
            "test",
        )
        .await
        .expect("the agent registers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_carry_their_phases_role_and_only_agents_with_it_claim_them() {
    let rules = Rules::new().await;
    register(&rules, "tester-1", &["tester"], None).await;
    register(&rules, "analyst-1", &["analyst", "release"], None).await;
    let placed = rules.ticket_in(Phase::Requirements).await;
    let roles: Vec<Option<String>> =
        sqlx::query_scalar("select role from tasks where ticket_id = $1 order by seq")
            .bind(uuid(&placed.ticket))
            .fetch_all(&rules.pool)
            .await
            .expect("the tasks");
    assert_eq!(roles, vec![Some("analyst".to_owned()); 2]);

    let next = rules
        .claim("tester-1", Some(&placed.ticket), json!({}))
        .await
        .rejected();
    next.assert(
        "task.claim.rejected",
        RejectionCode::NoTaskAvailable,
        Some(&placed.ticket),
    );
    assert!(next.reasons().contains("for the roles tester"), "{next}");
    let of_any = rules.claim("tester-1", None, json!({})).await.rejected();
    assert_eq!(of_any.data.code, RejectionCode::NoTaskAvailable, "{of_any}");

    let task = placed.task("analyze_requirements");
    let given = rules
        .claim("tester-1", Some(&placed.ticket), json!({"task_id": task}))
        .await
        .rejected();
    given.assert(
        "task.claim.rejected",
        RejectionCode::TaskNotClaimable,
        Some(&placed.ticket),
    );
    assert!(given.reasons().contains("requires role analyst"), "{given}");

    let claimed: TaskClaimed = rules
        .claim("analyst-1", None, json!({}))
        .await
        .succeeded()
        .data;
    assert_eq!(claimed.task_id.to_string(), task);
    assert_eq!(claimed.role.as_deref(), Some("analyst"));
    let generated = rules.events.of_type("task.claimed", &placed.ticket);
    assert_eq!(generated.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_agent_has_every_role_unless_unregistered_agents_are_refused() {
    let rules = Rules::new().await;
    let placed = rules.ticket_in(Phase::Design).await;
    let claimed: TaskClaimed = rules
        .claim("stranger", Some(&placed.ticket), json!({}))
        .await
        .succeeded()
        .data;
    assert_eq!(claimed.role.as_deref(), Some("architect"));

    let refusing = Rules::with_settings(|settings| {
        settings.agents.unregistered = Unregistered::Refuse;
    })
    .await;
    register(&refusing, "architect-1", &["architect"], None).await;
    let placed = refusing.ticket_in(Phase::Design).await;
    let refused = refusing
        .claim("stranger", Some(&placed.ticket), json!({}))
        .await
        .rejected();
    refused.assert(
        "task.claim.rejected",
        RejectionCode::Forbidden,
        Some(&placed.ticket),
    );
    assert!(refused.reasons().contains("not registered"), "{refused}");
    let outcome = refusing
        .send_as(
            "stranger",
            CREATE,
            None,
            json!({"title": "from a stranger"}),
        )
        .await;
    assert_eq!(outcome["type"], "ticket.create.rejected", "{outcome}");
    assert_eq!(outcome["data"]["code"], "forbidden", "{outcome}");
    let tickets: i64 = sqlx::query_scalar("select count(*) from tickets")
        .fetch_one(&refusing.pool)
        .await
        .expect("the tickets");
    assert_eq!(tickets, 1, "the refused request created nothing");
    refusing
        .claim("architect-1", Some(&placed.ticket), json!({}))
        .await
        .succeeded();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_agents_own_limit_replaces_the_default() {
    let rules = Rules::new().await;
    register(&rules, "solo", &["*"], Some(1)).await;
    register(&rules, "wide", &["*"], Some(5)).await;
    let mut tickets = Vec::new();
    for _ in 0..6 {
        tickets.push(rules.ticket_in(Phase::Implementation).await);
    }
    rules
        .claim("solo", Some(&tickets[0].ticket), json!({}))
        .await
        .succeeded();
    let second = rules
        .claim("solo", Some(&tickets[1].ticket), json!({}))
        .await
        .rejected();
    assert_eq!(
        second.data.code,
        RejectionCode::ClaimLimitReached,
        "{second}"
    );
    assert!(second.reasons().contains("may hold 1"), "{second}");
    for placed in &tickets[1..] {
        rules
            .claim("wide", Some(&placed.ticket), json!({}))
            .await
            .succeeded();
    }
    let sixth = rules
        .claim("wide", Some(&tickets[1].ticket), json!({}))
        .await
        .rejected();
    assert!(sixth.reasons().contains("may hold 5"), "{sixth}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimable_listings_show_an_agent_only_what_its_roles_allow() {
    let rules = Rules::new().await;
    register(&rules, "dev", &["developer"], None).await;
    let design = rules.ticket_in(Phase::Design).await;
    let implementation = rules.ticket_in(Phase::Implementation).await;
    let dev = rules.workflow.registered_profile(
        &phaseflow::store::agents::find(&rules.pool, "dev")
            .await
            .expect("read")
            .expect("registered"),
    );
    let filter = |roles: Option<Vec<String>>| phaseflow::store::listings::TaskFilter {
        claimable: Some(true),
        roles,
        ..Default::default()
    };
    let listed = |page: phaseflow::workflow::listings::Page<_>| {
        page.items
            .iter()
            .map(|task: &phaseflow::store::tasks::TaskRecord| task.ticket_id.to_string())
            .collect::<Vec<_>>()
    };
    let retry = phaseflow::workflow::RetryPolicy {
        min_delay: std::time::Duration::from_millis(10),
        max_delay: std::time::Duration::from_millis(100),
        max_attempts: Some(3),
    };
    let for_dev = rules
        .workflow
        .list_tasks(
            &filter(dev.role_filter().map(<[String]>::to_vec)),
            None,
            50,
            retry,
        )
        .await
        .expect("listed");
    let for_anyone = rules
        .workflow
        .list_tasks(&filter(None), None, 50, retry)
        .await
        .expect("listed");
    let for_dev = listed(for_dev);
    assert!(!for_dev.is_empty());
    assert!(
        for_dev
            .iter()
            .all(|ticket| *ticket == implementation.ticket),
        "{for_dev:?}"
    );
    assert!(listed(for_anyone).contains(&design.ticket));
}
