//! What a test leaves behind on the shared Postgres and RabbitMQ, and how it goes away.
//!
//! Every name a test creates starts with [`TestNames::new`]'s stem, `…_<pid>_<unix seconds>_<id>`:
//! the database `phaseflow_test_<pid>_<secs>_<id>` and the broker names `test-<pid>-<secs>-<id>.*`.
//! A test's [`Cleanup`] guard drops its database and deletes its exchanges and queues when the
//! test ends, also when it fails or panics: its `Drop` does the work on a thread of its own with
//! its own runtime, since it may run while a tokio runtime unwinds. A run that was killed leaves
//! its names behind; the first test of the next process ([`sweep_stale_once`]) removes those of
//! processes that are gone, and old ones nobody is connected to. It never touches what a running
//! test process is using.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::{AMQP_URL, POSTGRES_URL};

/// The prefix of every test database.
pub const DATABASE_PREFIX: &str = "phaseflow_test_";
/// The prefix of every test exchange and queue.
pub const BROKER_PREFIX: &str = "test-";
/// How old a leftover of a process that may still run must be before it is removed (and then
/// only when nobody is connected to it).
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

/// The names of one test: its database and the stem of its broker names.
#[derive(Debug, Clone)]
pub struct TestNames {
    pub database: String,
    pub broker: String,
}

impl TestNames {
    /// New names carrying this process's id and the time, so a later sweep can tell whose they
    /// are and how old.
    pub fn new() -> TestNames {
        let pid = std::process::id();
        let secs = unix_seconds();
        let id = &Uuid::new_v4().simple().to_string()[..16];
        TestNames {
            database: format!("{DATABASE_PREFIX}{pid}_{secs}_{id}"),
            broker: format!("{BROKER_PREFIX}{pid}-{secs}-{id}"),
        }
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or_default()
}

/// The process id and creation time a test name carries after its prefix (`<pid><sep><secs>…`);
/// `None` for names of another form.
pub fn owner_of(name: &str, prefix: &str, separator: char) -> Option<(u32, u64)> {
    let mut parts = name.strip_prefix(prefix)?.split(separator);
    let pid = parts.next()?.parse().ok()?;
    let secs = parts.next()?.parse().ok()?;
    Some((pid, secs))
}

fn process_is_running(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether a leftover owned by `pid`, created at `secs`, may be removed: its process is gone,
/// or it is older than [`STALE_AFTER`] and `unused` (a process id taken again by another
/// process, or a test process that hangs).
fn is_stale(pid: u32, secs: u64, unused: bool) -> bool {
    let old = unix_seconds().saturating_sub(secs) > STALE_AFTER.as_secs();
    !process_is_running(pid) || (old && unused)
}

/// Drops the test's database and deletes its broker names when dropped, unless
/// [`Cleanup::disarm`] was called after the test cleaned up itself.
pub struct Cleanup {
    names: TestNames,
    /// the queues and exchanges to delete, full names
    queues: Mutex<Vec<String>>,
    exchanges: Vec<String>,
    done: AtomicBool,
}

impl Cleanup {
    /// A guard for a test with a database only (no broker names).
    pub fn database(names: TestNames) -> Cleanup {
        Cleanup {
            names,
            queues: Mutex::default(),
            exchanges: Vec::new(),
            done: AtomicBool::new(false),
        }
    }

    /// A guard for a database and these exchanges and queues.
    pub fn with_broker(names: TestNames, queues: Vec<String>, exchanges: Vec<String>) -> Cleanup {
        Cleanup {
            names,
            queues: Mutex::new(queues),
            exchanges,
            done: AtomicBool::new(false),
        }
    }

    /// Deletes this queue too (one a test declared beside the worker's).
    pub fn add_queue(&self, queue: &str) {
        self.queues
            .lock()
            .expect("cleanup lock")
            .push(queue.to_owned());
    }

    pub fn names(&self) -> &TestNames {
        &self.names
    }

    /// Removes everything now, from async code.
    pub async fn run(&self) {
        if self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        let queues = self.queues.lock().expect("cleanup lock").clone();
        remove(&self.names.database, &queues, &self.exchanges).await;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        let database = self.names.database.clone();
        let queues = std::mem::take(
            &mut *self
                .queues
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        let exchanges = std::mem::take(&mut self.exchanges);
        // a runtime may be running (or unwinding) on this thread: the work gets its own
        let worker = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a cleanup runtime");
            runtime.block_on(remove(&database, &queues, &exchanges));
        });
        let _ = worker.join();
    }
}

/// Drops a database (closing its connections) and deletes queues and exchanges; what is
/// already gone is skipped.
async fn remove(database: &str, queues: &[String], exchanges: &[String]) {
    drop_database(database).await;
    if queues.is_empty() && exchanges.is_empty() {
        return;
    }
    let Ok(connection) =
        phaseflow_client::broker::connect(AMQP_URL, 30, "phaseflow test cleanup").await
    else {
        return;
    };
    delete_broker_names(&connection, queues, exchanges).await;
    let _ = connection.close(200, "test cleanup".into()).await;
}

async fn delete_broker_names(
    connection: &lapin::Connection,
    queues: &[String],
    exchanges: &[String],
) {
    for queue in queues {
        // a failed delete closes the channel: one channel per name
        if let Ok(channel) = connection.create_channel().await {
            let _ = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
    }
    for exchange in exchanges {
        if let Ok(channel) = connection.create_channel().await {
            let _ = channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
    }
}

/// Drops a database, closing the connections to it.
pub async fn drop_database(database: &str) {
    if let Ok(mut admin) = PgConnection::connect(&format!("{POSTGRES_URL}/postgres")).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "drop database if exists \"{database}\" with (force)"
        )))
        .execute(&mut admin)
        .await;
        let _ = admin.close().await;
    }
}

/// Whether a database of that name exists.
pub async fn database_exists(database: &str) -> bool {
    let mut admin = PgConnection::connect(&format!("{POSTGRES_URL}/postgres"))
        .await
        .expect("Postgres reachable");
    let exists = sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
        .bind(database)
        .fetch_one(&mut admin)
        .await
        .expect("pg_database readable");
    let _ = admin.close().await;
    exists
}

static SWEPT: OnceCell<()> = OnceCell::const_new();

/// Removes, once per process, what killed test runs left behind (see the module's doc).
pub async fn sweep_stale_once() {
    SWEPT
        .get_or_init(|| async {
            sweep_stale_databases().await;
            sweep_stale_broker_names().await;
        })
        .await;
}

async fn sweep_stale_databases() {
    let Ok(mut admin) = PgConnection::connect(&format!("{POSTGRES_URL}/postgres")).await else {
        return;
    };
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "select datname, not exists (select 1 from pg_stat_activity a where a.datname = d.datname) \
         from pg_database d where datname like 'phaseflow\\_test\\_%'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap_or_default();
    let _ = admin.close().await;
    for (database, unused) in rows {
        if let Some((pid, secs)) = owner_of(&database, DATABASE_PREFIX, '_') {
            if is_stale(pid, secs, unused) {
                drop_database(&database).await;
            }
        }
    }
}

/// The broker cannot be listed over AMQP and its management API may be off: the names are
/// read with `rabbitmqctl` when it answers, and nothing is swept when it does not.
async fn sweep_stale_broker_names() {
    let list = |what: &'static str| {
        Command::new("timeout")
            .args(["15", "rabbitmqctl", "-q", what, "name"])
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| {
                String::from_utf8_lossy(&output.stdout)
                    .lines()
                    .map(str::trim)
                    .filter(|name| name.starts_with(BROKER_PREFIX))
                    .filter(|name| {
                        owner_of(name, BROKER_PREFIX, '-')
                            .is_some_and(|(pid, secs)| is_stale(pid, secs, false))
                    })
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let (queues, exchanges) =
        tokio::task::spawn_blocking(move || (list("list_queues"), list("list_exchanges")))
            .await
            .unwrap_or_default();
    if queues.is_empty() && exchanges.is_empty() {
        return;
    }
    if let Ok(connection) =
        phaseflow_client::broker::connect(AMQP_URL, 30, "phaseflow test sweep").await
    {
        delete_broker_names(&connection, &queues, &exchanges).await;
        let _ = connection.close(200, "stale test names".into()).await;
    }
}

/// Sweeps now, whether or not this process swept before (for the harness's own test).
pub async fn sweep_stale_now() {
    sweep_stale_databases().await;
    sweep_stale_broker_names().await;
}
