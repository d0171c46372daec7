//! Usage reports, against Postgres alone: heartbeats and task reports carry what the work cost
//! since the agent's last report; every applied request counts once (a redelivered id adds
//! nothing), `task.completed` carries the task's total, and a malformed `usage` is rejected with
//! a reason naming each bad field and records nothing.

use phaseflow::domain::Phase;
use phaseflow::protocol::events::TaskFinished;
use phaseflow::protocol::RejectionCode;
use serde_json::json;

use crate::common::requests::{COMPLETE_TASK, HEARTBEAT};
use crate::common::rules::Rules;
use crate::common::{uuid, Requests};

/// Rows of `task_usage` and their sums: (rows, input, output, cost) for `agent`.
async fn recorded_by(rules: &Rules, agent: &str) -> (i64, i64, i64, f64) {
    sqlx::query_as(
        "select count(*), coalesce(sum(input_tokens), 0)::bigint, \
                coalesce(sum(output_tokens), 0)::bigint, coalesce(sum(cost_usd), 0)::float8 \
         from task_usage where agent = $1",
    )
    .bind(agent)
    .fetch_one(&rules.pool)
    .await
    .expect("the usage")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_report_counts_once_and_the_task_publishes_its_total() {
    let rules = Rules::new().await;
    let placed = rules.ticket_in(Phase::Implementation).await;
    let task = placed.task("implement_feature").to_owned();
    let other = placed.task("write_unit_tests").to_owned();
    for (agent, task) in [("dev-a", &task), ("dev-b", &other)] {
        rules
            .claim(agent, Some(&placed.ticket), json!({"task_id": task}))
            .await
            .succeeded();
    }
    let beat = json!({"task_id": task, "usage": {"input_tokens": 1000, "output_tokens": 200, "cost_usd": 0.25}});
    // the same request delivered three times counts once
    for _ in 0..3 {
        rules
            .publish(
                "dev-a",
                "beat-1",
                HEARTBEAT,
                Some(&placed.ticket),
                beat.clone(),
            )
            .await;
    }
    rules
        .heartbeat(
            "dev-a",
            &placed.ticket,
            json!({"task_id": task, "usage": {"input_tokens": 500, "cost_usd": 0.5}}),
        )
        .await
        .succeeded();
    rules
        .heartbeat(
            "dev-b",
            &placed.ticket,
            json!({"task_id": other, "usage": {"output_tokens": 70}}),
        )
        .await
        .succeeded();
    let report = json!({
        "task_id": task,
        "result": {"summary": "done"},
        "usage": {"input_tokens": 25, "output_tokens": 5, "cost_usd": 0.125}
    });
    for _ in 0..2 {
        rules
            .publish(
                "dev-a",
                "report-1",
                COMPLETE_TASK,
                Some(&placed.ticket),
                report.clone(),
            )
            .await;
    }
    let completed = rules.events.of_type("task.completed", &placed.ticket);
    assert_eq!(completed.len(), 1, "the report was applied once");
    let finished: TaskFinished = completed[0].data();
    assert_eq!(
        (
            finished.usage.input_tokens,
            finished.usage.output_tokens,
            finished.usage.cost_usd
        ),
        (1525, 205, 0.875)
    );
    assert_eq!(recorded_by(&rules, "dev-a").await, (3, 1525, 205, 0.875));
    assert_eq!(recorded_by(&rules, "dev-b").await, (1, 0, 70, 0.0));
    let by_phase: (String, i64) = sqlx::query_as(
        "select phase_id::text, sum(input_tokens + output_tokens)::bigint from task_usage \
         where ticket_id = $1 group by phase_id",
    )
    .bind(uuid(&placed.ticket))
    .fetch_one(&rules.pool)
    .await
    .expect("the ticket's usage");
    assert_eq!(by_phase, ("PHASE_IMPLEMENTATION".to_owned(), 1800));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_usage_is_rejected_naming_each_field_and_records_nothing() {
    let rules = Rules::new().await;
    let placed = rules.ticket_in(Phase::Design).await;
    let task = placed.task("design_architecture").to_owned();
    rules
        .claim("architect", Some(&placed.ticket), json!({"task_id": task}))
        .await
        .succeeded();
    let bad = rules
        .heartbeat(
            "architect",
            &placed.ticket,
            json!({"task_id": task, "usage": {
                "input_tokens": -1,
                "output_tokens": 5_000_000_000u64,
                "cost_usd": "12",
                "dollars": 1
            }}),
        )
        .await
        .rejected();
    assert_eq!(bad.data.code, RejectionCode::InvalidRequest, "{bad}");
    let reasons = bad.reasons();
    for field in [
        "usage.input_tokens",
        "usage.output_tokens",
        "usage.cost_usd",
        "usage.dollars",
    ] {
        assert!(reasons.contains(field), "{field}: {reasons}");
    }
    let report = rules
        .report_task(
            &placed.ticket,
            json!({"task_id": task, "usage": {"cost_usd": 1e9}}),
        )
        .await
        .rejected();
    assert!(report.reasons().contains("usage.cost_usd"), "{report}");
    assert_eq!(recorded_by(&rules, "architect").await.0, 0);
    assert_eq!(recorded_by(&rules, "agent-test").await.0, 0);

    // a whole number written with a fraction is a whole number, as JSON Schema's integer says
    rules
        .heartbeat(
            "architect",
            &placed.ticket,
            json!({"task_id": task, "usage": {"input_tokens": 35.0, "cost_usd": 0}}),
        )
        .await
        .succeeded();
    assert_eq!(recorded_by(&rules, "architect").await, (1, 35, 0, 0.0));
}
