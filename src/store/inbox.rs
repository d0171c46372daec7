//! The inbox: message ids already applied, per consuming handler.

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
