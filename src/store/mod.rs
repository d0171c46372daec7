//! Postgres: the only module with SQL. Connection pools, database creation and migrations, one
//! submodule per table family, and the listings across them.
//!
//! Functions here run single statements inside a caller's transaction (or on a pool for reads)
//! and translate between rows and domain types. They make no workflow decisions and never
//! commit: the transaction belongs to `workflow`.
//!
//! Values are always bound, never spliced into SQL. A statement built with `format!` (marked
//! `AssertSqlSafe`) is put together from this module's own column lists, or from a database
//! name that is quoted as an identifier.

pub mod agents;
pub mod artifacts;
pub mod board;
pub mod budgets;
pub mod claims;
pub mod context;
pub mod gate_results;
pub mod inbox;
pub mod listings;
pub mod outbox;
pub mod reviews;
pub mod tasks;
pub mod tickets;
pub mod usage;

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgPool};

use crate::retry::{Backoff, OutageLog};

pub use sqlx::{PgConnection, Postgres, Transaction};

/// The schema migrations compiled into the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Opens a pool to `url`.
///
/// A connection that took long to acquire is logged at info, not sqlx's default warning: the
/// first attempts after every Postgres outage are slow, and that outage is logged already; a
/// pool too small for the load shows in `phaseflow_handler_duration_seconds`.
pub async fn connect(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url).context("invalid database url")?;
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .acquire_slow_level(log::LevelFilter::Info)
        .connect_lazy_with(options))
}

/// Creates the database named in `url` when it does not exist yet.
pub async fn create_database_if_missing(url: &str) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(url).context("invalid database url")?;
    let name = options
        .get_database()
        .context("the database url names no database")?
        .to_owned();
    let mut admin = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .context("cannot reach Postgres to create the database")?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        // an identifier cannot be bound: the name is quoted, its quotes doubled
        let statement = format!("create database \"{}\"", name.replace('"', "\"\""));
        if let Err(error) = sqlx::query(AssertSqlSafe(statement))
            .execute(&mut admin)
            .await
        {
            // another process may have created it meanwhile
            let created_elsewhere = error
                .as_database_error()
                .and_then(|db| db.code())
                .is_some_and(|code| code == "42P04" || code == "23505");
            if !created_elsewhere {
                return Err(error).context("cannot create the database");
            }
        }
    }
    admin.close().await.ok();
    Ok(())
}

/// Creates the database if needed and applies pending migrations.
pub async fn migrate(url: &str) -> anyhow::Result<()> {
    create_database_if_missing(url).await?;
    // a one-connection pool: `Migrator::run` over a pool keeps the caller's future `Send`
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(PgConnectOptions::from_str(url)?)
        .await
        .context("cannot connect to the database to migrate it")?;
    let result = MIGRATOR
        .run(&pool)
        .await
        .context("applying migrations failed");
    pool.close().await;
    result
}

/// [`migrate`], retried per `backoff` for as long as Postgres is unreachable (a start-up race
/// with the database, or an outage); any other failure is returned at once. The outage is
/// logged through `outages`.
pub async fn migrate_when_reachable(
    url: &str,
    backoff: Backoff,
    outages: &OutageLog,
) -> anyhow::Result<()> {
    use backon::Retryable;
    // each attempt's failure carries when it began, for the outage log
    let attempt = || {
        let started = Instant::now();
        async move { migrate(url).await.map_err(|error| (started, error)) }
    };
    attempt
        .retry(backoff)
        .when(|(_, error)| {
            error.chain().any(|cause| {
                cause
                    .downcast_ref::<sqlx::Error>()
                    .is_some_and(is_transient)
            })
        })
        .notify(|(started, error), delay| {
            outages.failed("migrations", *started, &format_args!("{error:#}"), delay)
        })
        .await
        .map_err(|(_, error)| error)?;
    outages.succeeded("migrations");
    Ok(())
}

/// Checks that Postgres answers.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("select 1").execute(pool).await.map(|_| ())
}

/// Whether an error is an outage or a conflict worth retrying (never a reason to reject a request).
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // serialization failure, deadlock, connection exceptions, shutdown, too many
            // connections, lock timeout, statement cancelled, read-only (failover), database
            // starting up
            code == "40001"
                || code == "40P01"
                || code.starts_with("08")
                || code.starts_with("57P")
                || code == "53300"
                || code == "55P03"
                || code == "57014"
                || code == "25006"
        }),
        _ => false,
    }
}

/// Whether an error is a serialization failure or a deadlock: transactions collided and one
/// must try again, while Postgres itself is fine.
pub fn is_conflict(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == "40001" || code == "40P01")
}

/// Converts a Postgres enum read as text into a domain value.
pub(crate) fn decode_enum<T>(column: &str, text: &str) -> Result<T, sqlx::Error>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    text.parse::<T>()
        .map_err(|error| sqlx::Error::ColumnDecode {
            index: column.to_owned(),
            source: Box::new(error),
        })
}
