//! The inbox: message ids already applied, per consuming handler; and the count of failed
//! attempts at processing a message, which decides when it is dead-lettered.

use std::collections::HashSet;

use sqlx::PgConnection;

/// Records that `handler` applies each of `messages` (id, type) in the current transaction, in
/// one statement, and returns the ids recorded now. An id missing from the result was applied
/// before (a redelivery or a duplicate): the caller must change nothing for it. An id that
/// appears twice is recorded once.
pub async fn record_all(
    connection: &mut PgConnection,
    handler: &str,
    messages: &[(&str, &str)],
) -> Result<HashSet<String>, sqlx::Error> {
    if messages.is_empty() {
        return Ok(HashSet::new());
    }
    let ids: Vec<&str> = messages.iter().map(|(id, _)| *id).collect();
    let types: Vec<&str> = messages.iter().map(|(_, kind)| *kind).collect();
    let recorded: Vec<String> = sqlx::query_scalar(
        "insert into inbox (handler, message_id, message_type) \
         select $1, id, kind from unnest($2::text[], $3::text[]) as m(id, kind) \
         on conflict do nothing returning message_id",
    )
    .bind(handler)
    .bind(&ids)
    .bind(&types)
    .fetch_all(connection)
    .await?;
    Ok(recorded.into_iter().collect())
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

/// The most rows one [`prune`] deletes.
pub const PRUNE_BATCH: u64 = 10_000;

/// Deletes inbox rows older than `inbox_retention_hours` (never when 0), at most
/// [`PRUNE_BATCH`] of them; returns how many rows went.
pub async fn prune(pool: &sqlx::PgPool, inbox_retention_hours: u32) -> Result<u64, sqlx::Error> {
    // 0: applied ids are kept for ever
    if inbox_retention_hours == 0 {
        return Ok(0);
    }
    Ok(sqlx::query(
        "delete from inbox where ctid in (select ctid from inbox where processed_at < now() - make_interval(hours => $1) limit $2)",
    )
    .bind(i32::try_from(inbox_retention_hours).unwrap_or(i32::MAX))
    .bind(PRUNE_BATCH as i64)
    .execute(pool)
    .await?
    .rows_affected())
}
