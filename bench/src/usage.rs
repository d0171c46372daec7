//! Measuring what the processes spend: CPU time of the worker, the bench driver, Postgres and
//! RabbitMQ from `/proc`, the machine's busy and iowait share from `/proc/stat`, memory from
//! `/proc/<pid>/status`, and commits and WAL from Postgres's statistics views. Linux only;
//! a figure that cannot be read is `None`, never a guess.

use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

use crate::environment::BenchEnv;
use crate::report::{round, CpuPerUnit, UsageReport};

/// CPU and Postgres counters at one moment.
pub struct Sample {
    at: Instant,
    worker_ticks: Option<u64>,
    driver_ticks: Option<u64>,
    postgres_ticks: u64,
    rabbitmq_ticks: u64,
    machine: Option<MachineCpu>,
    commits: Option<i64>,
    wal_syncs: Option<i64>,
    wal_bytes: Option<i64>,
}

#[derive(Clone, Copy)]
struct MachineCpu {
    busy: u64,
    iowait: u64,
    total: u64,
}

/// Differences between two samples.
#[derive(Default)]
pub struct Usage {
    seconds: f64,
    pub worker_cpu_percent: Option<f64>,
    worker_cpu_seconds: Option<f64>,
    driver_cpu_percent: Option<f64>,
    postgres_cpu_percent: f64,
    rabbitmq_cpu_percent: f64,
    machine_busy_percent: Option<f64>,
    machine_iowait_percent: Option<f64>,
    commits: Option<i64>,
    wal_syncs: Option<i64>,
    wal_bytes: Option<i64>,
}

impl Usage {
    /// The report of the interval; `units`: transitions (or transactions) in it, for the
    /// per-unit figures (none when `0`).
    pub fn report(&self, units: u64) -> UsageReport {
        let per = |value: Option<f64>| {
            value.and_then(|value| (units > 0).then(|| round(value / units as f64, 3)))
        };
        // CPU milliseconds per unit, by process: percent of one core x seconds x 10 = ms
        let cpu_ms = |percent: f64| per(Some(percent * self.seconds * 10.0));
        let cpu = CpuPerUnit {
            postgres: cpu_ms(self.postgres_cpu_percent),
            rabbitmq: cpu_ms(self.rabbitmq_cpu_percent),
            worker: self.worker_cpu_percent.and_then(cpu_ms),
            bench_driver: self.driver_cpu_percent.and_then(cpu_ms),
            total: 0.0,
        };
        let total_cpu_ms: f64 = [cpu.postgres, cpu.rabbitmq, cpu.worker, cpu.bench_driver]
            .iter()
            .flatten()
            .sum();
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get()) as f64;
        UsageReport {
            cpu_ms_per_unit: CpuPerUnit {
                total: round(total_cpu_ms, 3),
                ..cpu
            },
            cpu_ceiling_per_second: (total_cpu_ms > 0.0)
                .then(|| round(cores * 1000.0 / total_cpu_ms, 0)),
            seconds: round(self.seconds, 2),
            worker_cpu_percent: self.worker_cpu_percent.map(|value| round(value, 1)),
            worker_cpu_ms_per_unit: per(self.worker_cpu_seconds.map(|seconds| seconds * 1000.0)),
            bench_driver_cpu_percent: self.driver_cpu_percent.map(|value| round(value, 1)),
            postgres_cpu_percent: round(self.postgres_cpu_percent, 1),
            rabbitmq_cpu_percent: round(self.rabbitmq_cpu_percent, 1),
            machine_busy_percent: self.machine_busy_percent.map(|value| round(value, 1)),
            machine_iowait_percent: self.machine_iowait_percent.map(|value| round(value, 1)),
            commits: self.commits,
            commits_per_unit: per(self.commits.map(|value| value as f64)),
            wal_syncs: self.wal_syncs,
            wal_syncs_per_unit: per(self.wal_syncs.map(|value| value as f64)),
            wal_bytes_per_unit: per(self.wal_bytes.map(|value| value as f64))
                .map(|value| value.round()),
            note: "CPU percent: 100 = one core busy; commits come from pg_stat_database \
                   (flushed about once a second, so approximate); WAL syncs and bytes from \
                   pg_stat_wal are cluster-wide and include anything else running",
        }
    }
}

/// Samples CPU, memory and Postgres counters; knows the worker's process once it runs.
pub struct Meter {
    admin: PgPool,
    ticks_per_second: f64,
    worker_pid: Option<u32>,
    worker_is_self: bool,
    worker_db: String,
}

impl Meter {
    pub async fn new(env: &BenchEnv) -> anyhow::Result<Meter> {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&env.database_url("postgres"))
            .await
            .with_context(|| {
                format!(
                    "cannot reach Postgres at {} (start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)",
                    phaseflow_client::broker::redact_url(&env.server_url)
                )
            })?;
        Ok(Meter {
            admin,
            ticks_per_second: clock_ticks(),
            worker_pid: None,
            worker_is_self: false,
            worker_db: env.worker_db.clone(),
        })
    }

    pub fn with_worker(self, pid: u32, is_self: bool) -> Meter {
        Meter {
            worker_pid: Some(pid),
            worker_is_self: is_self,
            ..self
        }
    }

    pub async fn sample(&self) -> Sample {
        self.sample_database(&self.worker_db).await
    }

    pub async fn sample_database(&self, database: &str) -> Sample {
        let commits = sqlx::query_scalar::<_, i64>(
            "select xact_commit from pg_stat_database where datname = $1",
        )
        .bind(database)
        .fetch_optional(&self.admin)
        .await
        .ok()
        .flatten();
        let wal = sqlx::query("select wal_sync, wal_bytes::int8 as wal_bytes from pg_stat_wal")
            .fetch_optional(&self.admin)
            .await
            .ok()
            .flatten();
        let (wal_syncs, wal_bytes) = match wal {
            Some(row) => (row.try_get("wal_sync").ok(), row.try_get("wal_bytes").ok()),
            None => (None, None),
        };
        let (postgres_ticks, rabbitmq_ticks) = service_ticks();
        Sample {
            at: Instant::now(),
            worker_ticks: self.worker_pid.and_then(process_ticks),
            driver_ticks: process_ticks(std::process::id()),
            postgres_ticks,
            rabbitmq_ticks,
            machine: machine_cpu(),
            commits,
            wal_syncs,
            wal_bytes,
        }
    }

    pub fn usage(&self, before: &Sample, after: &Sample) -> Usage {
        let seconds = after.at.duration_since(before.at).as_secs_f64().max(1e-9);
        let percent = |ticks: u64| ticks as f64 / self.ticks_per_second / seconds * 100.0;
        let delta = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?));
        let worker = delta(before.worker_ticks, after.worker_ticks);
        let machine = match (before.machine, after.machine) {
            (Some(a), Some(b)) if b.total > a.total => {
                let total = (b.total - a.total) as f64;
                Some((
                    b.busy.saturating_sub(a.busy) as f64 / total * 100.0,
                    b.iowait.saturating_sub(a.iowait) as f64 / total * 100.0,
                ))
            }
            _ => None,
        };
        Usage {
            seconds,
            worker_cpu_percent: worker.map(percent),
            worker_cpu_seconds: worker.map(|ticks| ticks as f64 / self.ticks_per_second),
            driver_cpu_percent: if self.worker_is_self {
                None
            } else {
                delta(before.driver_ticks, after.driver_ticks).map(percent)
            },
            postgres_cpu_percent: percent(
                after.postgres_ticks.saturating_sub(before.postgres_ticks),
            ),
            rabbitmq_cpu_percent: percent(
                after.rabbitmq_ticks.saturating_sub(before.rabbitmq_ticks),
            ),
            machine_busy_percent: machine.map(|(busy, _)| busy),
            machine_iowait_percent: machine.map(|(_, iowait)| iowait),
            commits: after.commits.zip(before.commits).map(|(b, a)| b - a),
            wal_syncs: after.wal_syncs.zip(before.wal_syncs).map(|(b, a)| b - a),
            wal_bytes: after.wal_bytes.zip(before.wal_bytes).map(|(b, a)| b - a),
        }
    }
}

/// Clock ticks per second of `/proc/<pid>/stat`'s CPU times.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

/// `(comm, utime + stime)` of a process.
fn read_stat(pid: &str) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // after the comm: state is field 3 of stat(5); utime and stime are fields 14 and 15
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

fn process_ticks(pid: u32) -> Option<u64> {
    read_stat(&pid.to_string()).map(|(_, ticks)| ticks)
}

/// CPU ticks of all Postgres and RabbitMQ (beam) processes on the machine.
fn service_ticks() -> (u64, u64) {
    let (mut postgres, mut rabbitmq) = (0, 0);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (0, 0);
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|pid| pid.bytes().all(|byte| byte.is_ascii_digit()))
        else {
            continue;
        };
        match read_stat(pid) {
            Some((comm, ticks)) if comm == "postgres" => postgres += ticks,
            Some((comm, ticks)) if comm.starts_with("beam") => rabbitmq += ticks,
            _ => {}
        }
    }
    (postgres, rabbitmq)
}

fn machine_cpu() -> Option<MachineCpu> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|line| line.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    if values.len() < 8 {
        return None;
    }
    let total: u64 = values.iter().sum();
    let (idle, iowait) = (values[3], values[4]);
    Some(MachineCpu {
        busy: total - idle - iowait,
        iowait,
        total,
    })
}

/// (VmHWM, VmRSS) of a process in MiB.
pub fn read_memory(pid: u32) -> Option<(f64, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}
