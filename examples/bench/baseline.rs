//! The seed's Python function as a child process (bench/seed_baseline.py), driven one batch at a time.
//!
//! The worker imports the seed once (boto3 and its resource, like a warm Lambda) with the region and
//! endpoint the bench gives it, then answers one JSON line per batch: wall time, requests by
//! operation and consumed capacity, counted inside Python. It is stopped by its PID (kill_on_drop)
//! when the bench ends.

use anyhow::{anyhow, bail, Context};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How the seed is called with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// As Lambda calls it: once with the whole event (it reads Records[0] only).
    First,
    /// Once per record, so it does the whole batch's work.
    All,
}

impl Variant {
    fn as_str(self) -> &'static str {
        match self {
            Variant::First => "first",
            Variant::All => "all",
        }
    }
}

/// Where the worker's script, interpreter and seed text are.
#[derive(Debug, Clone)]
pub struct Python {
    pub interpreter: PathBuf,
    pub script: PathBuf,
    pub seed_file: PathBuf,
}

#[derive(Debug, Deserialize)]
pub struct Hello {
    pub python: String,
    pub boto3: String,
    pub function_bytes: u64,
}

#[derive(Debug, Deserialize)]
pub struct Run {
    pub seconds: f64,
    pub requests: BTreeMap<String, u64>,
    /// The responses' ConsumedCapacity, summed (the worker asks for TOTAL on every request).
    pub capacity: Option<SeedCapacity>,
    pub error: Option<String>,
}

/// Capacity the seed's requests consumed, as DynamoDB reported it.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct SeedCapacity {
    pub read_units: f64,
    pub write_units: f64,
    /// Responses without a ConsumedCapacity.
    pub unreported: u64,
}

#[derive(Debug, Deserialize)]
struct Rss {
    max_rss_kb: u64,
}

pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    pub hello: Hello,
}

impl Python {
    fn command(&self, endpoint: &str, mode: &str) -> Command {
        let mut command = Command::new(&self.interpreter);
        command
            .arg(&self.script)
            .arg("--seed-file")
            .arg(&self.seed_file)
            .arg(mode)
            .env("BENCH_SEED_ENDPOINT", endpoint)
            .env("BENCH_SEED_REGION", crate::REGION)
            // No profile or config file from the machine: the same credentials as the Rust side, so
            // DynamoDB Local (which keeps one database per access key and region) shows both the same table.
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        command
    }

    /// Starts a worker whose seed talks to `endpoint`.
    pub async fn worker(&self, endpoint: &str) -> anyhow::Result<Worker> {
        let mut child = self
            .command(endpoint, "serve")
            .spawn()
            .with_context(|| format!("starting {}", self.interpreter.display()))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let hello = lines
            .next_line()
            .await?
            .ok_or_else(|| anyhow!("the Python baseline exited before it was ready"))?;
        let hello = serde_json::from_str(&hello).context("the Python baseline's first line")?;
        Ok(Worker {
            child,
            stdin,
            lines,
            hello,
        })
    }

    /// Time from starting the interpreter to the seed module imported (boto3 resource built), and
    /// the interpreter's peak RSS then.
    pub async fn init_time(&self, endpoint: &str) -> anyhow::Result<(Duration, u64)> {
        let started = Instant::now();
        let mut child = self.command(endpoint, "init").spawn()?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let line = lines.next_line().await?.unwrap_or_default();
        let elapsed = started.elapsed();
        let kib = line
            .strip_prefix("ready ")
            .and_then(|kib| kib.trim().parse::<u64>().ok())
            .ok_or_else(|| anyhow!("the Python baseline did not start: {line:?}"))?;
        child.wait().await?;
        Ok((elapsed, kib * 1024))
    }
}

impl Worker {
    async fn ask<T: serde::de::DeserializeOwned>(
        &mut self,
        request: serde_json::Value,
    ) -> anyhow::Result<T> {
        self.stdin
            .write_all(format!("{request}\n").as_bytes())
            .await?;
        self.stdin.flush().await?;
        let line = self
            .lines
            .next_line()
            .await?
            .ok_or_else(|| anyhow!("the Python baseline exited"))?;
        Ok(serde_json::from_str(&line)?)
    }

    /// Runs the seed on the event stored at `event_file`.
    pub async fn run(&mut self, event_file: &Path, variant: Variant) -> anyhow::Result<Run> {
        let run: Run = self
            .ask(serde_json::json!({"event": event_file, "variant": variant.as_str()}))
            .await?;
        if let Some(error) = &run.error {
            bail!("the seed failed: {error}");
        }
        Ok(run)
    }

    /// The worker's peak resident set so far, in bytes.
    pub async fn peak_rss(&mut self) -> anyhow::Result<u64> {
        let rss: Rss = self.ask(serde_json::json!({"rss": true})).await?;
        Ok(rss.max_rss_kb * 1024)
    }

    pub async fn stop(mut self) {
        drop(self.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}
