//! A fault-injecting HTTP/1.1 proxy for DynamoDB Local: what production's network and throttling
//! do to the SDK, on demand, on 127.0.0.1.
//!
//! Put it between an SDK client and DynamoDB Local (point the client's endpoint at
//! [`Proxy::endpoint_url`]) and it forwards each request, or, by schedule or probability
//! ([`FaultPlan`]), answers it with a fault instead: a throttling error (HTTP 400 with the
//! `__type` and `x-amzn-ErrorType` that the SDK classifies as throttling), a 500 or 503, a reset
//! connection, added latency, or, the hardest one, forwarding the request and then resetting the
//! connection instead of returning the response (the write happened; the client saw an error).
//! Reliability tests, the benchmark and developers use it; the Lambda never does.
//!
//! It speaks just enough HTTP/1.1 for the SDK: keep-alive connections, bodies framed by
//! `Content-Length` or chunked encoding (headers parsed with `httparse`). Each client connection
//! gets its own upstream connection. Dropping the [`Proxy`] stops it and every connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// What the proxy may do to one request instead of (or on top of) forwarding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// HTTP 400 `ProvisionedThroughputExceededException` (a table or index over its capacity).
    ProvisionedThroughputExceeded,
    /// HTTP 400 `ThrottlingException` (request rate too high for the account or control plane).
    Throttling,
    /// HTTP 500 `InternalServerError`.
    InternalError,
    /// HTTP 503 `ServiceUnavailable`.
    Unavailable,
    /// The connection is reset (TCP RST) without an answer; the request is not forwarded.
    Reset,
    /// The request is forwarded after this much extra time.
    Delay(Duration),
    /// The request is forwarded and DynamoDB answers, then the connection is reset instead of
    /// returning the answer: the write happened, the client saw a connection error.
    DropResponse,
}

impl Fault {
    /// Every kind, with `delay` for [`Fault::Delay`]: for fault matrices.
    pub fn kinds(delay: Duration) -> [Fault; 7] {
        [
            Fault::ProvisionedThroughputExceeded,
            Fault::Throttling,
            Fault::InternalError,
            Fault::Unavailable,
            Fault::Reset,
            Fault::Delay(delay),
            Fault::DropResponse,
        ]
    }

    /// A short stable name, for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::ProvisionedThroughputExceeded => "throughput-exceeded-400",
            Fault::Throttling => "throttling-400",
            Fault::InternalError => "internal-error-500",
            Fault::Unavailable => "unavailable-503",
            Fault::Reset => "connection-reset",
            Fault::Delay(_) => "latency",
            Fault::DropResponse => "drop-response",
        }
    }

    /// The canned answer of an error fault: status line, error code, `__type`, message.
    fn canned(&self) -> Option<(&'static str, &'static str, &'static str, &'static str)> {
        Some(match self {
            Fault::ProvisionedThroughputExceeded => (
                "400 Bad Request",
                "ProvisionedThroughputExceededException",
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded. \
                 Consider increasing your provisioning level with the UpdateTable API.",
            ),
            Fault::Throttling => (
                "400 Bad Request",
                "ThrottlingException",
                "com.amazon.coral.availability#ThrottlingException",
                "Rate of requests exceeds the allowed throughput.",
            ),
            Fault::InternalError => (
                "500 Internal Server Error",
                "InternalServerError",
                "com.amazonaws.dynamodb.v20120810#InternalServerError",
                "Internal server error (injected by the fault proxy)",
            ),
            Fault::Unavailable => (
                "503 Service Unavailable",
                "ServiceUnavailable",
                "com.amazon.coral.availability#ServiceUnavailableException",
                "Service unavailable (injected by the fault proxy)",
            ),
            Fault::Reset | Fault::Delay(_) | Fault::DropResponse => return None,
        })
    }
}

/// Which requests get which fault. Built with the methods below; the default forwards everything.
///
/// For each request, in order: a scheduled fault for its number wins; otherwise each
/// probabilistic rule is drawn in turn and the first that fires applies. [`FaultPlan::latency`]
/// is added to every forwarded request regardless. Requests are numbered from 0 in the order the
/// proxy reads them, counting only those [`FaultPlan::only`] selects (all, by default).
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    latency: Duration,
    schedule: BTreeMap<u64, Fault>,
    rules: Vec<(Fault, f64)>,
    seed: u64,
    operations: Option<Vec<String>>,
}

impl FaultPlan {
    /// Forward everything unchanged.
    pub fn none() -> Self {
        Self::default()
    }

    /// Forward everything, each request `latency` later (the benchmark's 0/2/5 ms).
    pub fn with_latency(latency: Duration) -> Self {
        Self::default().latency(latency)
    }

    /// Adds `latency` to every forwarded request.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Each selected request gets `fault` with probability `rate` (0.0 to 1.0).
    pub fn probability(mut self, fault: Fault, rate: f64) -> Self {
        self.rules.push((fault, rate.clamp(0.0, 1.0)));
        self
    }

    /// Selected request number `index` (from 0) gets `fault`.
    pub fn at(mut self, index: u64, fault: Fault) -> Self {
        self.schedule.insert(index, fault);
        self
    }

    /// The first `count` selected requests get `fault`.
    pub fn first(mut self, count: u64, fault: Fault) -> Self {
        for index in 0..count {
            self.schedule.insert(index, fault);
        }
        self
    }

    /// Seeds the random draws, so a run is reproducible up to the order requests arrive in.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Faults (and numbering) apply only to these DynamoDB operations (`Query`,
    /// `TransactWriteItems`, ...: the part of `X-Amz-Target` after the dot); others pass through.
    pub fn only(mut self, operations: &[&str]) -> Self {
        self.operations = Some(operations.iter().map(|op| (*op).to_owned()).collect());
        self
    }
}

/// What the proxy has seen and done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyCounts {
    /// Requests read from clients.
    pub requests: u64,
    /// Requests forwarded to the target (including those whose response was then dropped).
    pub forwarded: u64,
    /// Faults injected, by [`Fault::name`].
    pub faults: BTreeMap<&'static str, u64>,
    /// Requests by DynamoDB operation.
    pub operations: BTreeMap<String, u64>,
    /// Connections the proxy could not serve for a reason of its own (upstream down, bad HTTP).
    pub proxy_errors: u64,
}

impl ProxyCounts {
    /// All faults injected.
    pub fn total_faults(&self) -> u64 {
        self.faults.values().sum()
    }

    /// Faults of one kind injected.
    pub fn faults_of(&self, fault: Fault) -> u64 {
        self.faults.get(fault.name()).copied().unwrap_or(0)
    }
}

#[derive(Debug)]
struct State {
    plan: FaultPlan,
    rng: fastrand::Rng,
    selected: u64,
    counts: ProxyCounts,
}

impl State {
    fn new(plan: FaultPlan) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(plan.seed),
            plan,
            selected: 0,
            counts: ProxyCounts::default(),
        }
    }

    /// Numbers the request, counts it, and decides its fault and extra latency.
    fn decide(&mut self, operation: &str) -> (Option<Fault>, Duration) {
        self.counts.requests += 1;
        *self
            .counts
            .operations
            .entry(operation.to_owned())
            .or_default() += 1;
        let selected = self
            .plan
            .operations
            .as_ref()
            .is_none_or(|ops| ops.iter().any(|op| op == operation));
        if !selected {
            return (None, self.plan.latency);
        }
        let index = self.selected;
        self.selected += 1;
        let fault = self.plan.schedule.get(&index).copied().or_else(|| {
            let rng = &mut self.rng;
            self.plan
                .rules
                .iter()
                .find(|(_, rate)| rng.f64() < *rate)
                .map(|(fault, _)| *fault)
        });
        if let Some(fault) = fault {
            *self.counts.faults.entry(fault.name()).or_default() += 1;
        }
        (fault, self.plan.latency)
    }
}

type Shared = Arc<Mutex<State>>;

/// A running proxy. Stops (listener and every connection) when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    state: Shared,
    forwarded: Arc<AtomicU64>,
    proxy_errors: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `target` according to `faults`.
    /// Must be called within a tokio runtime.
    pub async fn start(target: SocketAddr, faults: FaultPlan) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state: Shared = Arc::new(Mutex::new(State::new(faults)));
        let forwarded = Arc::new(AtomicU64::new(0));
        let proxy_errors = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(accept_loop(
            listener,
            target,
            state.clone(),
            forwarded.clone(),
            proxy_errors.clone(),
        ));
        Ok(Proxy {
            addr,
            target,
            state,
            forwarded,
            proxy_errors,
            task,
        })
    }

    /// Where clients connect: 127.0.0.1 and the proxy's port.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where requests are forwarded.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// The endpoint URL to give an SDK client, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the plan from the next request on; numbering and the random draws start again.
    pub fn set_plan(&self, faults: FaultPlan) {
        let mut state = self.state.lock().expect("proxy state lock");
        state.rng = fastrand::Rng::with_seed(faults.seed);
        state.plan = faults;
        state.selected = 0;
    }

    /// What the proxy has seen and done so far.
    pub fn counts(&self) -> ProxyCounts {
        let mut counts = self.state.lock().expect("proxy state lock").counts.clone();
        counts.forwarded = self.forwarded.load(Ordering::Relaxed);
        counts.proxy_errors = self.proxy_errors.load(Ordering::Relaxed);
        counts
    }

    /// Stops the proxy now (dropping it does the same).
    pub fn stop(self) {}
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The accept task owns the JoinSet of connections: aborting it drops them all.
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    state: Shared,
    forwarded: Arc<AtomicU64>,
    proxy_errors: Arc<AtomicU64>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let state = state.clone();
                let forwarded = forwarded.clone();
                let proxy_errors = proxy_errors.clone();
                connections.spawn(async move {
                    if serve(client, target, state, forwarded).await.is_err() {
                        proxy_errors.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            // Reap finished connections so the set does not grow for ever.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// A connection with a read buffer: bytes read past the current message stay for the next one.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// An HTTP message read whole: its raw bytes, and what the proxy needs from its head.
struct Message {
    raw: Vec<u8>,
    operation: String,
    status: u16,
    close: bool,
}

const MAX_HEAD: usize = 64 * 1024;

impl Conn {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads more bytes into the buffer; false at end of stream.
    async fn fill(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// Takes exactly `n` bytes from the stream.
    async fn take(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Err(unexpected_eof());
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Takes one line, CRLF included.
    async fn line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                return Ok(self.buf.drain(..end + 2).collect());
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("line too long"));
            }
            if !self.fill().await? {
                return Err(unexpected_eof());
            }
        }
    }

    /// Reads one request (`request` true) or response; `None` on a clean end of stream before it.
    async fn message(&mut self, request: bool) -> std::io::Result<Option<Message>> {
        let head_len = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("header too long"));
            }
            if !self.fill().await? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(unexpected_eof())
                };
            }
        };
        let head: Vec<u8> = self.buf.drain(..head_len).collect();
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let (status, parsed_headers) = if request {
            let mut req = httparse::Request::new(&mut headers);
            req.parse(&head).map_err(|e| invalid(&e.to_string()))?;
            (0, req.headers.to_vec())
        } else {
            let mut res = httparse::Response::new(&mut headers);
            res.parse(&head).map_err(|e| invalid(&e.to_string()))?;
            (res.code.unwrap_or(0), res.headers.to_vec())
        };
        let header = |name: &str| {
            parsed_headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
        };
        let operation = header("x-amz-target")
            .and_then(|target| target.rsplit('.').next().map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned());
        let mut close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let length = header("content-length")
            .map(|v| {
                v.parse::<usize>()
                    .map_err(|_| invalid("bad Content-Length"))
            })
            .transpose()?;
        let mut raw = head;
        let no_body = !request && (status < 200 || status == 204 || status == 304);
        if no_body {
            // 1xx, 204 and 304 answers end with their head.
        } else if chunked {
            loop {
                let size_line = self.line().await?;
                let size = match httparse::parse_chunk_size(&size_line) {
                    Ok(httparse::Status::Complete((_, size))) => size as usize,
                    _ => return Err(invalid("bad chunk size")),
                };
                raw.extend_from_slice(&size_line);
                if size == 0 {
                    // Trailers, then the empty line.
                    loop {
                        let line = self.line().await?;
                        raw.extend_from_slice(&line);
                        if line == b"\r\n" {
                            break;
                        }
                    }
                    break;
                }
                raw.extend(self.take(size + 2).await?);
            }
        } else if let Some(length) = length {
            raw.extend(self.take(length).await?);
        } else if !request {
            // No framing: the body runs to the end of the connection.
            while self.fill().await? {}
            raw.append(&mut self.buf);
            close = true;
        }
        Ok(Some(Message {
            raw,
            operation,
            status,
            close,
        }))
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

fn unexpected_eof() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::UnexpectedEof)
}

/// Closes with a TCP RST rather than a FIN, as a crashed peer or a middlebox does.
fn reset(stream: TcpStream) {
    // SO_LINGER 0 makes close() send RST; if setting it fails, a plain close is the next best.
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Serves one client connection until it closes or a fault ends it.
async fn serve(
    client: TcpStream,
    target: SocketAddr,
    state: Shared,
    forwarded: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let mut client = Conn::new(client);
    let mut upstream: Option<Conn> = None;
    while let Some(request) = client.message(true).await? {
        let (fault, latency) = state
            .lock()
            .expect("proxy state lock")
            .decide(&request.operation);
        let delay = latency
            + match fault {
                Some(Fault::Delay(extra)) => extra,
                _ => Duration::ZERO,
            };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if let Some(fault) = fault {
            if let Some((status, code, type_, text)) = fault.canned() {
                let body = serde_json::json!({ "__type": type_, "message": text }).to_string();
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.0\r\n\
                     x-amzn-RequestId: fault-proxy\r\nx-amzn-ErrorType: {code}\r\n\
                     Content-Length: {}\r\n\r\n",
                    body.len()
                );
                client.stream.write_all(head.as_bytes()).await?;
                client.stream.write_all(body.as_bytes()).await?;
                if request.close {
                    return Ok(());
                }
                continue;
            }
            if fault == Fault::Reset {
                reset(client.stream);
                return Ok(());
            }
        }
        // Forward, on this client's upstream connection (re-opened if the target closed it).
        let response = match forward(&mut upstream, target, &request.raw).await {
            Ok(response) => response,
            Err(error) => {
                // The target is unreachable or broke the exchange: the client sees a reset.
                reset(client.stream);
                return Err(error);
            }
        };
        forwarded.fetch_add(1, Ordering::Relaxed);
        if fault == Some(Fault::DropResponse) {
            reset(client.stream);
            return Ok(());
        }
        client.stream.write_all(&response.raw).await?;
        if response.close {
            upstream = None;
        }
        if request.close || (response.close && response.status != 0) {
            return Ok(());
        }
    }
    Ok(())
}

/// Sends one request upstream and reads its whole response, opening the connection if needed.
async fn forward(
    upstream: &mut Option<Conn>,
    target: SocketAddr,
    request: &[u8],
) -> std::io::Result<Message> {
    // A pooled connection the target has since closed fails on first use: retry once on a new one.
    for attempt in 0..2 {
        let fresh = upstream.is_none();
        if fresh {
            let stream = TcpStream::connect(target).await?;
            let _ = stream.set_nodelay(true);
            *upstream = Some(Conn::new(stream));
        }
        let conn = upstream.as_mut().expect("connected above");
        let exchange = async {
            conn.stream.write_all(request).await?;
            conn.message(false).await?.ok_or_else(unexpected_eof)
        };
        match exchange.await {
            Ok(response) => return Ok(response),
            Err(error) => {
                *upstream = None;
                if fresh || attempt == 1 {
                    return Err(error);
                }
            }
        }
    }
    unreachable!("the second attempt always returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_wins_then_rules_in_order() {
        let mut state = State::new(
            FaultPlan::none()
                .at(1, Fault::Reset)
                .probability(Fault::InternalError, 1.0)
                .probability(Fault::Unavailable, 1.0),
        );
        assert_eq!(state.decide("Query").0, Some(Fault::InternalError));
        assert_eq!(state.decide("Query").0, Some(Fault::Reset));
        assert_eq!(state.decide("Query").0, Some(Fault::InternalError));
        assert_eq!(state.counts.requests, 3);
        assert_eq!(state.counts.faults["internal-error-500"], 2);
    }

    #[test]
    fn only_selected_operations_are_numbered_and_faulted() {
        let mut state = State::new(
            FaultPlan::none()
                .first(1, Fault::Throttling)
                .only(&["TransactWriteItems"]),
        );
        assert_eq!(state.decide("Query").0, None);
        assert_eq!(
            state.decide("TransactWriteItems").0,
            Some(Fault::Throttling)
        );
        assert_eq!(state.decide("TransactWriteItems").0, None);
        assert_eq!(state.counts.operations["Query"], 1);
    }

    #[test]
    fn probability_is_seeded_and_near_its_rate() {
        let draw = |seed| {
            let mut state =
                State::new(FaultPlan::none().probability(Fault::Reset, 0.25).seed(seed));
            (0..4000)
                .map(|_| state.decide("Query").0.is_some())
                .collect::<Vec<_>>()
        };
        let first = draw(7);
        assert_eq!(first, draw(7));
        let hits = first.iter().filter(|hit| **hit).count();
        assert!((800..1200).contains(&hits), "{hits} of 4000 at rate 0.25");
    }

    #[test]
    fn latency_applies_to_every_request() {
        let mut state = State::new(FaultPlan::with_latency(Duration::from_millis(2)));
        assert_eq!(state.decide("Query"), (None, Duration::from_millis(2)));
    }
}
