//! The names and places of one run: its databases, its broker names (all carrying the run's id,
//! so runs never share anything), the worker's configuration and log file. Nothing here
//! connects to anything.

use std::path::{Path, PathBuf};

use anyhow::Context;
use phaseflow::config::Settings;
use uuid::Uuid;

use crate::cli::Cli;

/// Names and places of one run.
pub struct BenchEnv {
    pub id: String,
    pub server_url: String,
    server_query: String,
    pub amqp_url: String,
    pub config_dir: PathBuf,
    pub baseline_db: String,
    pub worker_db: String,
    pub prefix: String,
    pub worker_log: PathBuf,
    /// where the child worker exports its spans (`--otlp-sink`), if anywhere
    pub otlp_endpoint: Option<String>,
}

impl BenchEnv {
    pub fn new(cli: &Cli) -> BenchEnv {
        let id = Uuid::new_v4().simple().to_string();
        let (server_url, server_query) = server_url(&cli.postgres_url);
        BenchEnv {
            server_url,
            server_query,
            amqp_url: cli.amqp_url.clone(),
            config_dir: config_dir(cli.config_dir.as_deref()),
            baseline_db: format!("phaseflow_bench_{id}_baseline"),
            worker_db: format!("phaseflow_bench_{id}"),
            prefix: format!("bench-{id}"),
            worker_log: std::env::temp_dir().join(format!("phaseflow-bench-{id}-worker.log")),
            otlp_endpoint: None,
            id,
        }
    }

    pub fn database_url(&self, database: &str) -> String {
        format!("{}/{database}{}", self.server_url, self.server_query)
    }

    /// The worker's settings: the configuration directory's, with this run's database, broker
    /// names and an ephemeral ops port.
    pub fn worker_settings(&self) -> anyhow::Result<Settings> {
        let mut settings = Settings::load_from(&self.config_dir).with_context(|| {
            format!(
                "cannot load the configuration in {}",
                self.config_dir.display()
            )
        })?;
        settings.database.url = self.database_url(&self.worker_db);
        settings.amqp.url = self.amqp_url.clone();
        let prefix = &self.prefix;
        settings.amqp.requests_exchange = format!("{prefix}.requests");
        settings.amqp.events_exchange = format!("{prefix}.events");
        settings.amqp.requests_queue = format!("{prefix}.worker.requests");
        settings.amqp.dead_letter_exchange = format!("{prefix}.dead-letter");
        settings.amqp.dead_letter_queue = format!("{prefix}.dead-letter");
        // a free port, so the bench can read the worker's /metrics
        let probe = std::net::TcpListener::bind("127.0.0.1:0").context("no free local port")?;
        settings.ops.addr = probe.local_addr()?;
        drop(probe);
        settings.worker.migrate_on_start = true;
        Ok(settings)
    }

    /// The queues the run declares on the broker (the worker's and the broker stage's).
    pub fn queues(&self) -> [String; 3] {
        let prefix = &self.prefix;
        [
            format!("{prefix}.worker.requests"),
            format!("{prefix}.dead-letter"),
            format!("{prefix}.hop"),
        ]
    }

    /// The exchanges the run declares on the broker.
    pub fn exchanges(&self) -> [String; 3] {
        let prefix = &self.prefix;
        [
            format!("{prefix}.requests"),
            format!("{prefix}.events"),
            format!("{prefix}.dead-letter"),
        ]
    }
}

/// `postgres://user@host:port/db?x=y` → (`postgres://user@host:port`, `?x=y`).
fn server_url(url: &str) -> (String, String) {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    (server.trim_end_matches('/').to_owned(), query)
}

/// The worker's configuration directory: the one chosen, `$PHASEFLOW_CONFIG_DIR`, `./config`,
/// or the repository's `config/`, whichever exists first.
fn config_dir(chosen: Option<&Path>) -> PathBuf {
    let candidates = [
        chosen.map(Path::to_path_buf),
        std::env::var_os("PHASEFLOW_CONFIG_DIR").map(PathBuf::from),
        Some(PathBuf::from("config")),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")),
    ];
    let found = candidates.into_iter().flatten().find(|dir| dir.is_dir());
    let dir = found.unwrap_or_else(|| PathBuf::from("/nonexistent"));
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

#[cfg(test)]
mod tests {
    use super::server_url;

    #[test]
    fn the_server_url_loses_its_database_and_keeps_its_query() {
        assert_eq!(
            server_url("postgres://postgres@127.0.0.1:5432/phaseflow?sslmode=disable"),
            (
                "postgres://postgres@127.0.0.1:5432".to_owned(),
                "?sslmode=disable".to_owned()
            )
        );
        assert_eq!(
            server_url("postgres://postgres@127.0.0.1:5432/"),
            (
                "postgres://postgres@127.0.0.1:5432".to_owned(),
                String::new()
            )
        );
        assert_eq!(
            server_url("postgres://postgres@127.0.0.1:5432"),
            (
                "postgres://postgres@127.0.0.1:5432".to_owned(),
                String::new()
            )
        );
    }
}
