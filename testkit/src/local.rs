//! The shared fixture of the integration tests: one DynamoDB Local per test binary, a fresh table
//! per test, clients that count their requests, and helpers to read the table back.
//!
//! The server is the official DynamoDB Local jar fetched by `make dynamodb-local`. It is started on a
//! free port through a small shell that holds a pipe from this process: when the test binary exits,
//! the pipe closes and the shell stops Java by its PID. If Java or the jar is missing, the first test
//! that needs the server fails with the command that fixes it.

use crate::items::s;
use crate::request_log::RequestLog;
use aws_sdk_dynamodb::Client;
use ddb::commands::schema;
use messaging_stream::model::{GROUP_ATTR, MESSAGE_ATTR, PK_ATTR, SK_ATTR};
use messaging_stream::plan::Item;
use messaging_stream::Config;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

struct Server {
    endpoint: String,
    /// The watchdog shell. Its stdin is never written: it sees EOF only when this process ends.
    _watchdog: Mutex<(Child, ChildStdin)>,
}

static SERVER: OnceLock<Server> = OnceLock::new();

fn emulator_dir() -> PathBuf {
    std::env::var_os("DYNAMODB_LOCAL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join(".cache/dynamodb-local/package/emulator"))
}

fn start_server() -> Server {
    let dir = emulator_dir();
    assert!(
        dir.join("DynamoDBLocal.jar").is_file(),
        "DynamoDB Local is not in {}: run `make dynamodb-local` (or `make test`, which does it)",
        dir.display()
    );
    assert!(
        Command::new("java")
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "java is not installed: run `make java` (installs openjdk-17-jre-headless)"
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port();
    // The shell starts Java, prints its PID, then waits for EOF on stdin and kills that PID.
    let script = r#"java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar -inMemory -port "$1" -disableTelemetry >"$2" 2>&1 &
pid=$!; echo "$pid"; cat >/dev/null; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; exit 0"#;
    let log = std::env::temp_dir().join(format!("dynamodb-local-{port}.log"));
    let mut child = Command::new("bash")
        .args([
            "-c",
            script,
            "dynamodb-local",
            &port.to_string(),
            &log.display().to_string(),
        ])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("bash to start DynamoDB Local");
    let mut pid = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut pid)
        .expect("DynamoDB Local's PID");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "DynamoDB Local (pid {}) did not listen on 127.0.0.1:{port} within 30 s; its log: {}",
            pid.trim(),
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        endpoint: format!("http://127.0.0.1:{port}"),
        _watchdog: Mutex::new({
            let stdin = child.stdin.take().expect("piped stdin");
            (child, stdin)
        }),
    }
}

/// The endpoint of this test binary's DynamoDB Local, started on first use.
pub fn endpoint() -> &'static str {
    &SERVER.get_or_init(start_server).endpoint
}

/// This binary's DynamoDB Local as a socket address (the fault proxy's upstream).
pub fn address() -> std::net::SocketAddr {
    endpoint()
        .trim_start_matches("http://")
        .parse()
        .expect("DynamoDB Local's endpoint is http://127.0.0.1:port")
}

/// A unique table name, so tests can share the server and run in parallel.
pub fn unique_table() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

/// The Lambda's config pointed at `endpoint` and `table`.
pub fn config_for(endpoint: &str, table: &str) -> Config {
    Config {
        table_name: table.to_owned(),
        endpoint_url: Some(endpoint.to_owned()),
        ..Config::default()
    }
}

/// A client for the config, counting requests in `log`.
pub async fn client_for(config: &Config, log: &RequestLog) -> Client {
    client_with(config, |dynamodb| dynamodb.interceptor(log.clone())).await
}

/// A client for the config as the Lambda builds it, with what `adjust` adds (interceptors that
/// hold or change requests, retry settings).
pub async fn client_with(
    config: &Config,
    adjust: impl FnOnce(aws_sdk_dynamodb::config::Builder) -> aws_sdk_dynamodb::config::Builder,
) -> Client {
    let sdk = messaging_stream::aws::sdk_config(config).await;
    Client::from_conf(adjust(messaging_stream::aws::dynamodb_config(&sdk)).build())
}

/// A DynamoDB Streams client for the config, counting its requests in `log`.
pub async fn streams_client_for(
    config: &Config,
    log: &RequestLog,
) -> aws_sdk_dynamodbstreams::Client {
    let sdk = messaging_stream::aws::sdk_config(config).await;
    aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(&sdk)
            .interceptor(log.clone())
            .build(),
    )
}

/// Runs `app`'s handler on `payload` as `ddb replay` does, and as Lambda would with a default
/// context (no deadline): the records parsed by the JSON adapter, then the one entry. Its error is
/// the invocation's: not a stream event, or a failed record without a sequence number.
pub async fn invoke(
    app: &messaging_stream::App,
    payload: &serde_json::Value,
) -> Result<
    (
        aws_lambda_events::streams::DynamoDbEventResponse,
        messaging_stream::handler::Summary,
    ),
    messaging_stream::handler::HandlerError,
> {
    let records = messaging_stream::event::parse_event(payload)?;
    Ok(messaging_stream::handle(app, records, None).await?)
}

/// A test's own table on the shared server, with the handler's app (wired as the Lambda wires it,
/// `App::on_client`) and a request counter.
pub struct TestTable {
    pub config: Config,
    pub client: Client,
    pub requests: RequestLog,
    pub app: messaging_stream::App,
}

impl TestTable {
    /// Creates a fresh, empty table.
    pub async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    /// Creates a fresh table; `adjust` may change the handler's config first.
    pub async fn with_config(adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = config_for(endpoint(), &unique_table());
        adjust(&mut config);
        let requests = RequestLog::new();
        let client = client_for(&config, &requests).await;
        schema::create_table(&client, &config.table_name, &config.group_index_name)
            .await
            .expect("create the test table");
        requests.reset();
        let app = messaging_stream::App::on_client(client.clone(), config.clone());
        Self {
            config,
            client,
            requests,
            app,
        }
    }

    pub fn table(&self) -> &str {
        &self.config.table_name
    }

    /// Writes items as they are.
    pub async fn put(&self, items: impl IntoIterator<Item = Item>) {
        for item in items {
            self.client
                .put_item()
                .table_name(self.table())
                .set_item(Some(item))
                .send()
                .await
                .expect("put a test item");
        }
    }

    /// Every item of the table, read consistently (a scan of the base table, not the GSI).
    pub async fn all_items(&self) -> Vec<Item> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(self.table())
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan the test table");
            items.extend(page.items().iter().cloned());
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return items;
            }
        }
    }

    /// Group rows of `group`, read consistently, keyed by owner pk.
    pub async fn group_rows(&self, group: &str) -> HashMap<String, Vec<Item>> {
        let mut rows: HashMap<String, Vec<Item>> = HashMap::new();
        for item in self.all_items().await {
            if item
                .get(GROUP_ATTR)
                .and_then(|v| v.as_s().ok())
                .map(String::as_str)
                == Some(group)
            {
                rows.entry(s(&item, PK_ATTR)).or_default().push(item);
            }
        }
        rows
    }

    /// (owner pk, sk, message) of every row of `group`, sorted: easy to compare and to assert on.
    pub async fn row_summaries(&self, group: &str) -> Vec<(String, String, String)> {
        let mut rows: Vec<_> = self
            .group_rows(group)
            .await
            .into_iter()
            .flat_map(|(pk, items)| {
                items
                    .into_iter()
                    .map(move |i| (pk.clone(), s(&i, SK_ATTR), s(&i, MESSAGE_ATTR)))
            })
            .collect();
        rows.sort();
        rows
    }

    /// Runs the handler on `payload` as Lambda would with a default context ([`invoke`]).
    pub async fn invoke(
        &self,
        payload: serde_json::Value,
    ) -> Result<
        aws_lambda_events::streams::DynamoDbEventResponse,
        messaging_stream::handler::HandlerError,
    > {
        invoke(&self.app, &payload)
            .await
            .map(|(response, _)| response)
    }
}
