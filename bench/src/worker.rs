//! The worker under test: a child `phaseflow worker` process (the default), or the library's
//! worker run inside this process. Whatever happens to the run, a started worker is stopped:
//! gracefully when it can be, killed when it cannot.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use phaseflow::config::Settings;
use tokio_util::sync::CancellationToken;

use crate::cli::Cli;
use crate::environment::BenchEnv;

/// How the worker runs.
pub enum Launch {
    Process(PathBuf),
    InProcess,
}

impl Launch {
    /// As the command line asks: in-process with `--in-process`, else the `--worker-binary` or
    /// the `phaseflow` binary next to this one, else in-process (an error with
    /// `--worker-process`).
    pub fn choose(cli: &Cli) -> anyhow::Result<Launch> {
        if cli.in_process {
            return Ok(Launch::InProcess);
        }
        let binary = cli.worker_binary.clone().or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(|dir| dir.join("phaseflow")))
        });
        match binary.filter(|path| path.is_file()) {
            Some(path) => Ok(Launch::Process(path)),
            None if cli.worker_process => bail!(
                "--worker-process: no phaseflow binary next to phaseflow-bench (build both with \
                 `cargo build --release --workspace`, or pass --worker-binary)"
            ),
            None => Ok(Launch::InProcess),
        }
    }

    /// Starts the worker with `settings`.
    pub fn start(&self, env: &BenchEnv, settings: &Settings) -> anyhow::Result<WorkerHandle> {
        match self {
            Launch::Process(binary) => Ok(WorkerHandle::Process(ChildWorker::spawn(
                binary, env, settings,
            )?)),
            Launch::InProcess => {
                let stop = CancellationToken::new();
                let handle = tokio::spawn(phaseflow::worker::run(settings.clone(), stop.clone()));
                Ok(WorkerHandle::InProcess { stop, handle })
            }
        }
    }

    /// The binary, when the worker runs as a process.
    pub fn binary(&self) -> Option<&Path> {
        match self {
            Launch::Process(binary) => Some(binary),
            Launch::InProcess => None,
        }
    }
}

/// The running worker.
pub enum WorkerHandle {
    Process(ChildWorker),
    InProcess {
        stop: CancellationToken,
        handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    },
}

impl WorkerHandle {
    /// The process whose RSS and CPU are the worker's.
    pub fn pid(&self) -> u32 {
        match self {
            WorkerHandle::Process(child) => child.child.id(),
            WorkerHandle::InProcess { .. } => std::process::id(),
        }
    }

    pub fn includes_driver(&self) -> bool {
        matches!(self, WorkerHandle::InProcess { .. })
    }

    /// Fails when the worker already ended.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self {
            WorkerHandle::Process(child) => {
                if let Some(status) = child.child.try_wait()? {
                    bail!("the worker process exited early ({status})");
                }
            }
            WorkerHandle::InProcess { handle, .. } => {
                if handle.is_finished() {
                    bail!("the in-process worker stopped early");
                }
            }
        }
        Ok(())
    }

    /// Stops the worker gracefully; `false` if it had to be killed or failed.
    pub async fn stop(self) -> bool {
        match self {
            WorkerHandle::Process(mut child) => child.terminate().await,
            WorkerHandle::InProcess { stop, handle } => {
                stop.cancel();
                match tokio::time::timeout(Duration::from_secs(30), handle).await {
                    Ok(Ok(Ok(()))) => true,
                    Ok(Ok(Err(error))) => {
                        eprintln!("worker failed: {error:#}");
                        false
                    }
                    Ok(Err(error)) => {
                        eprintln!("worker task failed: {error}");
                        false
                    }
                    Err(_) => false,
                }
            }
        }
    }
}

/// A `phaseflow worker` child process; killed if dropped while running.
pub struct ChildWorker {
    child: Child,
}

impl ChildWorker {
    fn spawn(binary: &Path, env: &BenchEnv, settings: &Settings) -> anyhow::Result<ChildWorker> {
        let log = File::create(&env.worker_log)
            .with_context(|| format!("cannot create {}", env.worker_log.display()))?;
        let amqp = &settings.amqp;
        let child = Command::new(binary)
            .arg("worker")
            .env("PHASEFLOW_CONFIG_DIR", &env.config_dir)
            .env("DATABASE_URL", &settings.database.url)
            .env("AMQP_URL", &amqp.url)
            .env("PHASEFLOW_AMQP__REQUESTS_EXCHANGE", &amqp.requests_exchange)
            .env("PHASEFLOW_AMQP__EVENTS_EXCHANGE", &amqp.events_exchange)
            .env("PHASEFLOW_AMQP__REQUESTS_QUEUE", &amqp.requests_queue)
            .env(
                "PHASEFLOW_AMQP__DEAD_LETTER_EXCHANGE",
                &amqp.dead_letter_exchange,
            )
            .env("PHASEFLOW_AMQP__DEAD_LETTER_QUEUE", &amqp.dead_letter_queue)
            .env("PHASEFLOW_OPS_ADDR", settings.ops.addr.to_string())
            .env("PHASEFLOW_WORKER__MIGRATE_ON_START", "true")
            .env("PHASEFLOW_LOG_FORMAT", "json")
            .env(
                "PHASEFLOW_TELEMETRY__OTLP_ENDPOINT",
                env.otlp_endpoint.as_deref().unwrap_or(""),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Ok(ChildWorker { child })
    }

    /// SIGTERM, then up to 30 s for a graceful stop, then SIGKILL.
    async fn terminate(&mut self) -> bool {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status.success();
        }
        let pid = self.child.id().to_string();
        let signalled = Command::new("kill")
            .args(["-TERM", &pid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if signalled {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                match self.child.try_wait() {
                    Ok(Some(status)) => return status.success(),
                    Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
                    Err(_) => break,
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for ChildWorker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
