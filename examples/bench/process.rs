//! Process figures of the real Lambda binary, run as Lambda runs it: against a stub of the Lambda
//! runtime API on 127.0.0.1 (`AWS_LAMBDA_RUNTIME_API`).
//!
//! Initialisation is the time from spawning the process to its first `GET .../invocation/next` (what
//! Lambda reports as Init Duration). Peak RSS is the kernel's high-water mark (`VmHWM`) after the
//! process has served the bench's batches. Every process is ours, stopped by its PID.

use serde_json::Value;
use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

const NEXT: &str = "/2018-06-01/runtime/invocation/next";

/// What the stub saw, in order.
#[derive(Debug)]
pub enum Seen {
    /// A `GET .../next`; `served` is the request id of the event it was given, if any.
    Next { at: Instant, served: Option<String> },
    /// A `POST .../invocation/{id}/response` or `.../error`, or `.../init/error`.
    Posted {
        at: Instant,
        path: String,
        body: String,
    },
}

/// A minimal runtime API: hands out queued events, then holds `/next` open.
pub struct RuntimeStub {
    pub address: String,
    pub seen: mpsc::UnboundedReceiver<Seen>,
    tasks: JoinSet<()>,
}

impl RuntimeStub {
    pub async fn start(events: Vec<Value>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let events = Arc::new(Mutex::new(VecDeque::from(events)));
        let (sender, seen) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        let queue = events;
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            let mut next_id = 0u64;
            while let Ok((stream, _)) = listener.accept().await {
                let (queue, sender) = (queue.clone(), sender.clone());
                next_id += 1_000_000;
                connections.spawn(serve(stream, queue, sender, next_id));
            }
        });
        Ok(Self {
            address,
            seen,
            tasks,
        })
    }

    pub async fn next_seen(&mut self, within: Duration) -> anyhow::Result<Seen> {
        tokio::time::timeout(within, self.seen.recv())
            .await
            .map_err(|_| {
                anyhow::anyhow!("the function did not call the runtime API within {within:?}")
            })?
            .ok_or_else(|| anyhow::anyhow!("runtime stub stopped"))
    }
}

impl Drop for RuntimeStub {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

async fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let (mut length, mut chunked) = (0usize, false);
    loop {
        line.clear();
        reader.read_line(&mut line).await?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; size + 2]; // the chunk and its CRLF
            reader.read_exact(&mut chunk).await?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(length, 0);
        reader.read_exact(&mut body).await?;
    }
    Ok(Some(Request { method, path, body }))
}

async fn respond(stream: &mut BufReader<TcpStream>, status: &str, headers: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\n\r\n",
        body.len()
    );
    let stream = stream.get_mut();
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
}

async fn serve(
    stream: TcpStream,
    queue: Arc<Mutex<VecDeque<Value>>>,
    seen: mpsc::UnboundedSender<Seen>,
    first_id: u64,
) {
    let mut reader = BufReader::new(stream);
    let mut id = first_id;
    while let Ok(Some(request)) = read_request(&mut reader).await {
        let at = Instant::now();
        if request.method == "GET" && request.path == NEXT {
            let event = queue.lock().expect("stub queue").pop_front();
            let Some(event) = event else {
                let _ = seen.send(Seen::Next { at, served: None });
                std::future::pending::<()>().await; // hold it: the function is idle now
                return;
            };
            id += 1;
            let request_id = format!("bench-{id}");
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_millis()
                + 900_000;
            let headers = format!(
                "lambda-runtime-aws-request-id: {request_id}\r\nlambda-runtime-deadline-ms: {deadline}\r\n\
                 lambda-runtime-invoked-function-arn: arn:aws:lambda:{}:000000000000:function:messaging-stream\r\n\
                 lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000;Sampled=0\r\n",
                crate::REGION
            );
            let _ = seen.send(Seen::Next {
                at,
                served: Some(request_id),
            });
            respond(
                &mut reader,
                "200 OK",
                &headers,
                event.to_string().as_bytes(),
            )
            .await;
        } else if request.method == "POST" {
            let _ = seen.send(Seen::Posted {
                at,
                path: request.path,
                body: String::from_utf8_lossy(&request.body).into_owned(),
            });
            respond(&mut reader, "202 Accepted", "", br#"{"status":"OK"}"#).await;
        } else {
            respond(&mut reader, "404 Not Found", "", b"{}").await;
        }
    }
}

/// The Lambda binary with the environment Lambda gives it, pointed at the stub and `endpoint`.
pub fn lambda_command(binary: &Path, runtime_api: &str, endpoint: &str) -> tokio::process::Command {
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
pub async fn init_time(binary: &Path, endpoint: &str) -> anyhow::Result<(Duration, u64)> {
    let mut stub = RuntimeStub::start(Vec::new()).await?;
    let started = Instant::now();
    let mut child = lambda_command(binary, &stub.address, endpoint).spawn()?;
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
    events: Vec<Value>,
) -> anyhow::Result<Served> {
    let count = events.len();
    let mut stub = RuntimeStub::start(events).await?;
    let mut child = lambda_command(binary, &stub.address, endpoint).spawn()?;
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
