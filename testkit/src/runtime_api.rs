//! A stub of the Lambda Runtime API on 127.0.0.1, for running the real Lambda binary as Lambda
//! runs it (`AWS_LAMBDA_RUNTIME_API`): it hands out queued events, one per `GET .../next`, then
//! holds `/next` open (the function is idle); it answers every POST (`.../response`,
//! `.../error`, `init/error`) 202; and it reports what it saw, in order. The events' request ids
//! are `request-1`, `request-2`, ... in the order they are handed out. One copy for the tests
//! (tests/log_privacy.rs) and the bench (its process figures).

use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// The region of the function's ARN in the events' headers.
const REGION: &str = "us-east-1";

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
        let handed_out = Arc::new(AtomicU64::new(0));
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (queue, sender) = (queue.clone(), sender.clone());
                connections.spawn(serve(stream, queue, sender, handed_out.clone()));
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
    handed_out: Arc<AtomicU64>,
) {
    let mut reader = BufReader::new(stream);
    while let Ok(Some(request)) = read_request(&mut reader).await {
        let at = Instant::now();
        if request.method == "GET" && request.path == NEXT {
            let event = queue.lock().expect("stub queue").pop_front();
            let Some(event) = event else {
                let _ = seen.send(Seen::Next { at, served: None });
                std::future::pending::<()>().await; // hold it: the function is idle now
                return;
            };
            let request_id = format!("request-{}", handed_out.fetch_add(1, Ordering::SeqCst) + 1);
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_millis()
                + 900_000;
            let headers = format!(
                "lambda-runtime-aws-request-id: {request_id}\r\nlambda-runtime-deadline-ms: {deadline}\r\n\
                 lambda-runtime-invoked-function-arn: arn:aws:lambda:{}:000000000000:function:messaging-stream\r\n\
                 lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000;Sampled=0\r\n",
                REGION
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
