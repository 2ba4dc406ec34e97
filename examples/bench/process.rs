//! Process figures of the real Lambda binary, run as Lambda runs it: against the test kit's stub of
//! the Lambda runtime API on 127.0.0.1 (`AWS_LAMBDA_RUNTIME_API`).
//!
//! Initialisation is the time from spawning the process to its first `GET .../invocation/next` (what
//! Lambda reports as Init Duration). Peak RSS is the kernel's high-water mark (`VmHWM`) after the
//! process has served the bench's batches. Every process is ours, stopped by its PID.

use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use testkit::runtime_api::{RuntimeStub, Seen};

/// Settings added to the function's environment (a cache's, for the cold-start part).
pub type Environment = [(String, String)];

/// The Lambda binary with the environment Lambda gives it, pointed at the stub and `endpoint`,
/// plus `extra`.
pub fn lambda_command(
    binary: &Path,
    runtime_api: &str,
    endpoint: &str,
    extra: &Environment,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(binary);
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "messaging-stream")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/messaging-stream")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_REGION", crate::REGION)
        .env("AWS_DEFAULT_REGION", crate::REGION)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_SESSION_TOKEN", "local")
        .env("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        .env("TABLE_NAME", crate::table::TABLE)
        .envs(extra.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    command
}

/// A `/proc/PID/status` figure in bytes (`VmHWM`, `VmRSS`, ...).
fn status_bytes(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/{pid}/status"))?;
    Ok(kib * 1024)
}

/// The process's peak resident set so far (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> anyhow::Result<u64> {
    status_bytes(pid, "VmHWM")
}

/// The process's resident set now (`VmRSS`), in bytes.
pub fn resident(pid: u32) -> anyhow::Result<u64> {
    status_bytes(pid, "VmRSS")
}

/// Spawns the binary; returns the time to its first `/next` and its peak RSS then; stops it.
pub async fn init_time(
    binary: &Path,
    endpoint: &str,
    extra: &Environment,
) -> anyhow::Result<(Duration, u64)> {
    let mut stub = RuntimeStub::start(Vec::new()).await?;
    let started = Instant::now();
    let mut child = lambda_command(binary, &stub.address, endpoint, extra).spawn()?;
    let pid = child.id().expect("a running child has a PID");
    let seen = stub.next_seen(Duration::from_secs(10)).await;
    let rss = peak_rss(pid);
    child.kill().await?;
    match seen? {
        Seen::Next { at, .. } => Ok((at - started, rss?)),
        other => anyhow::bail!("the function's first call to the runtime API was {other:?}"),
    }
}

/// What one process did with a sequence of batches.
#[derive(Debug)]
pub struct Served {
    /// Time from handing out each event to its response, in order.
    pub invocations: Vec<Duration>,
    /// Peak RSS after each response, in order.
    pub peak_rss_after: Vec<u64>,
}

/// Runs the binary over `events`, checks every response is a full success, and reads its peak RSS
/// after each one (the process waits for the stub's answer to its response meanwhile).
pub async fn serve_batches(
    binary: &Path,
    endpoint: &str,
    extra: &Environment,
    events: Vec<Value>,
) -> anyhow::Result<Served> {
    let count = events.len();
    let mut stub = RuntimeStub::start(events).await?;
    let mut child = lambda_command(binary, &stub.address, endpoint, extra).spawn()?;
    let pid = child.id().expect("a running child has a PID");
    let mut handed_out = None;
    let mut served = Served {
        invocations: Vec::new(),
        peak_rss_after: Vec::new(),
    };
    loop {
        match stub.next_seen(Duration::from_secs(120)).await? {
            Seen::Next { at, served } => match served {
                Some(_) => handed_out = Some(at),
                None => break,
            },
            Seen::Posted { at, path, body } => {
                served.peak_rss_after.push(peak_rss(pid)?);
                anyhow::ensure!(
                    path.ends_with("/response"),
                    "the function reported an error at {path}: {body}"
                );
                let response: Value = serde_json::from_str(&body)?;
                let failures = response["batchItemFailures"].as_array().map_or(0, Vec::len);
                anyhow::ensure!(failures == 0, "the function failed items: {body}");
                served
                    .invocations
                    .push(at - handed_out.take().expect("a response follows an event"));
            }
        }
    }
    child.kill().await?;
    anyhow::ensure!(
        served.invocations.len() == count,
        "{count} events, {} responses",
        served.invocations.len()
    );
    Ok(served)
}
