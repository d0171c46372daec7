//! The real `phaseflow worker` binary as a child process, for tests that need what only a
//! process has: exit codes, signals (SIGTERM, SIGINT, `kill -9`), or settings read from the
//! environment at start (an OTLP endpoint, `OTEL_*` variables).
//!
//! A [`WorkerProcess`] runs on its test's database and broker names, in an environment cleaned
//! of the variables of the shell that runs the tests, serves its ops port on a free loopback
//! address, and writes its JSON log to a file under `CARGO_TARGET_TMPDIR`. It is killed when
//! dropped, even by a panic; its log is kept when the test fails and removed otherwise.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{TestApp, AMQP_URL};

/// A `phaseflow worker` process on the test's database and broker names; killed when dropped.
pub struct WorkerProcess {
    child: Child,
    ops: SocketAddr,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl WorkerProcess {
    /// Starts a worker; `name` tells its log file from those of the test's other workers.
    pub fn spawn(app: &TestApp, name: &str) -> WorkerProcess {
        WorkerProcess::spawn_with(app, name, &[])
    }

    /// Starts a worker with more environment variables, set after the ones every worker gets
    /// (so one of those named again takes the value given here).
    pub fn spawn_with(app: &TestApp, name: &str, env: &[(&str, &str)]) -> WorkerProcess {
        let ops = free_local_addr();
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("worker-{}-{name}.log", app.database));
        let log_file = std::fs::File::create(&log).expect("a log file");
        let amqp = &app.settings.amqp;
        let mut command = Command::new(env!("CARGO_BIN_EXE_phaseflow"));
        command
            .arg("worker")
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            if key.starts_with("PHASEFLOW_")
                || key.starts_with("OTEL_")
                || key == "DATABASE_URL"
                || key == "AMQP_URL"
                || key == "RUST_LOG"
            {
                command.env_remove(key);
            }
        }
        command
            .env(
                "PHASEFLOW_CONFIG_DIR",
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config"),
            )
            .env("DATABASE_URL", &app.settings.database.url)
            .env("AMQP_URL", AMQP_URL)
            .env("PHASEFLOW_AMQP__REQUESTS_EXCHANGE", &amqp.requests_exchange)
            .env("PHASEFLOW_AMQP__EVENTS_EXCHANGE", &amqp.events_exchange)
            .env("PHASEFLOW_AMQP__REQUESTS_QUEUE", &amqp.requests_queue)
            .env(
                "PHASEFLOW_AMQP__DEAD_LETTER_EXCHANGE",
                &amqp.dead_letter_exchange,
            )
            .env("PHASEFLOW_AMQP__DEAD_LETTER_QUEUE", &amqp.dead_letter_queue)
            // the queues' arguments (x-delivery-limit) must match what the test declared
            .env(
                "PHASEFLOW_AMQP__DELIVERY_LIMIT",
                amqp.delivery_limit.to_string(),
            )
            .env("PHASEFLOW_DATABASE__MAX_CONNECTIONS", "8")
            .env("PHASEFLOW_WORKER__SHUTDOWN_GRACE_MS", "15000")
            .env("PHASEFLOW_OUTBOX__POLL_INTERVAL_MS", "200")
            .env("PHASEFLOW_OPS_ADDR", ops.to_string())
            .env("PHASEFLOW_LOG_FORMAT", "json")
            .env("RUST_LOG", "info,sqlx=warn,lapin=off")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file handle"))
            .stderr(log_file);
        let child = command.spawn().expect("the phaseflow binary starts");
        WorkerProcess {
            child,
            ops,
            log,
            exited: None,
        }
    }

    /// The address of its ops port (`/healthz`, `/readyz`, `/metrics`).
    pub fn ops(&self) -> SocketAddr {
        self.ops
    }

    /// Waits until it consumes (its `/readyz` answers 200).
    pub async fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(probe(self.ops, "/readyz").await, Some((200, _))) {
            assert!(
                Instant::now() < deadline,
                "the worker never became ready\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until its ops server answers `/healthz` (it runs, ready or not).
    pub async fn wait_until_live(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while probe(self.ops, "/healthz").await.is_none() {
            assert!(
                Instant::now() < deadline,
                "the worker's ops server never answered\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Its `/metrics` page (Prometheus text), or `None` when nothing answers.
    pub async fn metrics(&self) -> Option<String> {
        match get(self.ops, "/metrics").await {
            Some((200, text)) => Some(text),
            _ => None,
        }
    }

    /// Sends it a signal by name (`TERM`, `INT`, ...).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(
            status.success(),
            "kill -{signal} {} failed",
            self.child.id()
        );
    }

    /// Sends it SIGKILL.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL is sent");
    }

    /// Waits until it has exited; panics with the end of its log after `within`.
    pub async fn wait_for_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.exited = Some(status);
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not exit within {within:?}\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its log file (standard output and error).
    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }

    /// The end of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- {} (last lines) ---\n{}",
            self.log.display(),
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // keep the log of a failed test for a look; drop it otherwise
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// A loopback address with a port nobody listens on right now.
pub fn free_local_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address")
}

/// GET `path` on an ops port: (status, JSON body or Null), or `None` when nothing answers.
pub async fn probe(ops: SocketAddr, path: &str) -> Option<(u16, Value)> {
    let (status, body) = get(ops, path).await?;
    Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

/// GET `path` on an ops port: (status, body), or `None` when nothing answers.
async fn get(ops: SocketAddr, path: &str) -> Option<(u16, String)> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(4))
        .build()
        .expect("an HTTP client");
    let response = client
        .get(format!("http://{ops}{path}"))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let body = response.text().await.ok()?;
    Some((status, body))
}
