//! Agents and their tokens: the records operators register, tokens stored as SHA-256 hashes
//! (never in clear), what was done to each agent, and what the agents page shows of each.
//!
//! A token's hash is looked up by equality on its primary key: the hash of a guess says
//! nothing about a stored token, so no comparison here needs to take constant time. Revoking
//! tokens notifies `agent_tokens_revoked`, which every API process listens on to end the live
//! streams the tokens opened.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

/// The channel revocations are announced on (the payload is the agent id).
pub const REVOKED_CHANNEL: &str = "agent_tokens_revoked";

/// How stale `last_seen_at` may get before a request writes it again, in seconds: an agent's
/// every request would otherwise write its row.
const SEEN_EVERY_SECONDS: f64 = 5.0;

/// An agent as registered.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRecord {
    pub agent_id: String,
    pub roles: Vec<String>,
    /// `None`: the configured default
    pub max_claims: Option<i32>,
    pub operator: bool,
    pub daily_cost_usd: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub last_seen_at: Option<DateTime<Utc>>,
}

const AGENT_COLUMNS: &str = "agent_id, roles, max_claims, operator, \
     daily_cost_usd::float8 as daily_cost_usd, created_at, created_by, last_seen_at";

fn agent_from_row(row: &PgRow) -> Result<AgentRecord, sqlx::Error> {
    Ok(AgentRecord {
        agent_id: row.try_get("agent_id")?,
        roles: row.try_get("roles")?,
        max_claims: row.try_get("max_claims")?,
        operator: row.try_get("operator")?,
        daily_cost_usd: row.try_get("daily_cost_usd")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        last_seen_at: row.try_get("last_seen_at")?,
    })
}

/// A registration.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAgent<'a> {
    pub agent_id: &'a str,
    pub roles: &'a [String],
    pub max_claims: Option<u32>,
    pub operator: bool,
    pub daily_cost_usd: Option<f64>,
}

/// Registers an agent, with what was done on the record. `false` when it exists already.
pub async fn insert(
    connection: &mut PgConnection,
    agent: &NewAgent<'_>,
    by: &str,
) -> Result<bool, sqlx::Error> {
    store_agent(connection, agent, by, "do nothing").await
}

/// Registers an agent, or gives a registered one these roles, limit, operator flag and budget;
/// what was done goes on the record. `true` when it was registered now.
pub async fn upsert(
    connection: &mut PgConnection,
    agent: &NewAgent<'_>,
    by: &str,
) -> Result<bool, sqlx::Error> {
    store_agent(
        connection,
        agent,
        by,
        "do update set roles = excluded.roles, max_claims = excluded.max_claims, \
         operator = excluded.operator, daily_cost_usd = excluded.daily_cost_usd",
    )
    .await
}

/// Inserts an agent, `on conflict (agent_id)` doing `on_conflict` (this module's own text), and
/// records `registered`, or `updated` when the conflict updated it; `true` when it was inserted.
async fn store_agent(
    connection: &mut PgConnection,
    agent: &NewAgent<'_>,
    by: &str,
    on_conflict: &str,
) -> Result<bool, sqlx::Error> {
    let statement = format!(
        "insert into agents (agent_id, roles, max_claims, operator, daily_cost_usd, created_by) \
         values ($1, $2, $3, $4, $5::float8::numeric, $6) \
         on conflict (agent_id) {on_conflict} returning xmax = 0"
    );
    let inserted: Option<bool> = sqlx::query_scalar(sqlx::AssertSqlSafe(statement))
        .bind(agent.agent_id)
        .bind(agent.roles)
        .bind(agent.max_claims.map(|claims| claims as i32))
        .bind(agent.operator)
        .bind(agent.daily_cost_usd)
        .bind(by)
        .fetch_optional(&mut *connection)
        .await?;
    match inserted {
        Some(inserted) => {
            let action = if inserted { "registered" } else { "updated" };
            record(connection, agent.agent_id, action, by).await?;
            if agent.daily_cost_usd.is_some() {
                super::budgets::recount_today(connection, agent.agent_id).await?;
            }
            Ok(inserted)
        }
        None => Ok(false),
    }
}

/// Adds an entry to the record of what was done to agents.
pub async fn record(
    connection: &mut PgConnection,
    agent_id: &str,
    action: &str,
    actor: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("insert into agent_record (agent_id, action, actor) values ($1, $2, $3)")
        .bind(agent_id)
        .bind(action)
        .bind(actor)
        .execute(connection)
        .await?;
    Ok(())
}

/// The agent `agent_id`, locked for the rest of the transaction.
pub async fn lock(
    connection: &mut PgConnection,
    agent_id: &str,
) -> Result<Option<AgentRecord>, sqlx::Error> {
    let statement = format!("select {AGENT_COLUMNS} from agents where agent_id = $1 for update");
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .bind(agent_id)
        .fetch_optional(connection)
        .await?
        .map(|row| agent_from_row(&row))
        .transpose()
}

/// Stores a token's hash for `agent_id`.
pub async fn insert_token(
    connection: &mut PgConnection,
    agent_id: &str,
    token_hash: &[u8],
    by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("insert into agent_tokens (token_hash, agent_id, issued_by) values ($1, $2, $3)")
        .bind(token_hash)
        .bind(agent_id)
        .bind(by)
        .execute(&mut *connection)
        .await?;
    record(connection, agent_id, "token issued", by).await
}

/// Revokes every live token of `agent_id` and announces it to the API processes (when the
/// transaction commits); returns how many were live.
pub async fn revoke_tokens(
    connection: &mut PgConnection,
    agent_id: &str,
    by: &str,
) -> Result<u64, sqlx::Error> {
    let revoked = sqlx::query(
        "update agent_tokens set revoked_at = now(), revoked_by = $2 \
         where agent_id = $1 and revoked_at is null",
    )
    .bind(agent_id)
    .bind(by)
    .execute(&mut *connection)
    .await?
    .rows_affected();
    record(connection, agent_id, "tokens revoked", by).await?;
    sqlx::query("select pg_notify($1, $2)")
        .bind(REVOKED_CHANNEL)
        .bind(agent_id)
        .execute(connection)
        .await?;
    Ok(revoked)
}

/// The agent a live token belongs to, noting that it was seen now (unless another transaction
/// holds its row: the note never waits).
pub async fn by_token(
    pool: &PgPool,
    token_hash: &[u8],
) -> Result<Option<AgentRecord>, sqlx::Error> {
    let statement = format!(
        "with found as ( \
             select a.* from agent_tokens t join agents a on a.agent_id = t.agent_id \
             where t.token_hash = $1 and t.revoked_at is null), \
         seen as ( \
             update agents set last_seen_at = now() where agent_id in ( \
                 select agent_id from agents where agent_id = (select agent_id from found) \
                   and (last_seen_at is null or last_seen_at < now() - make_interval(secs => $2)) \
                 for update skip locked)) \
         select {AGENT_COLUMNS} from found"
    );
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .bind(token_hash)
        .bind(SEEN_EVERY_SECONDS)
        .fetch_optional(pool)
        .await?
        .map(|row| agent_from_row(&row))
        .transpose()
}

/// Whether a token is live (issued and not revoked).
pub async fn token_is_live(pool: &PgPool, token_hash: &[u8]) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (select 1 from agent_tokens where token_hash = $1 and revoked_at is null)",
    )
    .bind(token_hash)
    .fetch_one(pool)
    .await
}

/// The registered agents among `agent_ids`.
pub async fn identify(
    connection: &mut PgConnection,
    agent_ids: &[&str],
) -> Result<Vec<AgentRecord>, sqlx::Error> {
    let statement = format!("select {AGENT_COLUMNS} from agents where agent_id = any($1)");
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .bind(agent_ids)
        .fetch_all(connection)
        .await?
        .iter()
        .map(agent_from_row)
        .collect()
}

/// Notes that the registered agents among `agent_ids` were seen now, passing over those whose
/// row another transaction holds (it never waits) and those noted within the last few seconds.
pub async fn note_seen(pool: &PgPool, agent_ids: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update agents set last_seen_at = now() where agent_id in ( \
             select agent_id from agents where agent_id = any($1) \
               and (last_seen_at is null or last_seen_at < now() - make_interval(secs => $2)) \
             for update skip locked)",
    )
    .bind(agent_ids)
    .bind(SEEN_EVERY_SECONDS)
    .execute(pool)
    .await?;
    Ok(())
}

/// Every registered agent, by id.
pub async fn all(pool: &PgPool) -> Result<Vec<AgentRecord>, sqlx::Error> {
    let statement = format!("select {AGENT_COLUMNS} from agents order by agent_id");
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .fetch_all(pool)
        .await?
        .iter()
        .map(agent_from_row)
        .collect()
}

/// One registered agent.
pub async fn find(pool: &PgPool, agent_id: &str) -> Result<Option<AgentRecord>, sqlx::Error> {
    let statement = format!("select {AGENT_COLUMNS} from agents where agent_id = $1");
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .bind(agent_id)
        .fetch_optional(pool)
        .await?
        .map(|row| agent_from_row(&row))
        .transpose()
}

/// A live claim as the agents page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveClaim {
    pub claimed_by: String,
    pub task_id: Uuid,
    pub ticket_id: Uuid,
    pub task_type: String,
    pub claim_id: Option<Uuid>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub last_progress_at: Option<DateTime<Utc>>,
    /// when its stall was reported (`None`: not stalled)
    pub stalled_at: Option<DateTime<Utc>>,
}

/// The live claims of `agent_ids` (every agent's when `None`), oldest first.
pub async fn live_claims(
    pool: &PgPool,
    agent_ids: Option<&[String]>,
) -> Result<Vec<LiveClaim>, sqlx::Error> {
    let rows = sqlx::query(
        "select claimed_by, id, ticket_id, task_type, claim_id, lease_expires_at, \
                last_progress_at, stalled_at \
         from tasks where status = 'claimed' and ($1::text[] is null or claimed_by = any($1)) \
         order by seq",
    )
    .bind(agent_ids)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(LiveClaim {
                claimed_by: row.try_get(0)?,
                task_id: row.try_get(1)?,
                ticket_id: row.try_get(2)?,
                task_type: row.try_get(3)?,
                claim_id: row.try_get(4)?,
                lease_expires_at: row.try_get(5)?,
                last_progress_at: row.try_get(6)?,
                stalled_at: row.try_get(7)?,
            })
        })
        .collect()
}

/// Tasks an agent reported: completed and failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskCounts {
    pub completed: i64,
    pub failed: i64,
}

/// The tasks each of `agent_ids` (every agent when `None`) finished, by agent.
pub async fn task_counts(
    pool: &PgPool,
    agent_ids: Option<&[String]>,
) -> Result<Vec<(String, TaskCounts)>, sqlx::Error> {
    let rows = sqlx::query(
        "select claimed_by, count(*) filter (where status = 'completed'), \
                count(*) filter (where status = 'failed') \
         from tasks where status in ('completed', 'failed') and claimed_by is not null \
           and ($1::text[] is null or claimed_by = any($1)) \
         group by claimed_by",
    )
    .bind(agent_ids)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get(0)?,
                TaskCounts {
                    completed: row.try_get(1)?,
                    failed: row.try_get(2)?,
                },
            ))
        })
        .collect()
}

/// An entry of the record of what was done to agents.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordEntry {
    pub agent_id: String,
    pub action: String,
    pub actor: String,
    pub at: DateTime<Utc>,
}

/// The latest `limit` entries of the record, newest first.
pub async fn latest_record(pool: &PgPool, limit: i64) -> Result<Vec<RecordEntry>, sqlx::Error> {
    let rows = sqlx::query(
        "select agent_id, action, actor, at from agent_record order by id desc limit $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RecordEntry {
                agent_id: row.try_get(0)?,
                action: row.try_get(1)?,
                actor: row.try_get(2)?,
                at: row.try_get(3)?,
            })
        })
        .collect()
}
