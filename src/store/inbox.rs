//! The inbox: message ids already applied, per consuming handler; and the count of failed
//! attempts at processing a message, which decides when it is dead-lettered.

use sqlx::PgConnection;

/// Records that `handler` applies `message_id` in the current transaction. `false` means the
/// message was applied before (a redelivery or a duplicate): the caller must change nothing.
pub async fn record(
    connection: &mut PgConnection,
    handler: &str,
    message_id: &str,
    message_type: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "insert into inbox (handler, message_id, message_type) values ($1, $2, $3) on conflict do nothing",
    )
    .bind(handler)
    .bind(message_id)
    .bind(message_type)
    .execute(connection)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Counts one more failed attempt of `handler` at processing `message_id` (a failure of the
/// processing itself, not an outage) and returns how many there were so far.
pub async fn record_failure(
    pool: &sqlx::PgPool,
    handler: &str,
    message_id: &str,
    error: &str,
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "insert into message_failures (handler, message_id, failures, last_error) values ($1, $2, 1, $3) \
         on conflict (handler, message_id) do update \
         set failures = message_failures.failures + 1, last_error = excluded.last_error, updated_at = now() \
         returning failures",
    )
    .bind(handler)
    .bind(message_id)
    .bind(error)
    .fetch_one(pool)
    .await
}
