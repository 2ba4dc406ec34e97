//! The Valkey server of the cache tests: one Debian `redis-server` per test binary (the same protocol
//! as Valkey and ElastiCache Serverless), TLS only, on a free 127.0.0.1 port.
//!
//! At start a shell makes a throwaway CA and a server certificate for 127.0.0.1 with `openssl`, starts
//! `redis-server` with TLS only (`--port 0`), no persistence, the default user off and two password
//! users: `cache`, restricted to the cache's keys and no dangerous commands (it stands in for
//! ElastiCache's IAM user), and `admin`, for the tests' own looks at the server. Like DynamoDB Local
//! ([`crate::local`]) the shell holds a pipe from this process: when the test binary exits, the pipe
//! closes and the shell stops the server by its PID and removes the certificates. If `redis-server`
//! is missing, the first test that needs it fails with the command that fixes it.

use messaging_stream::cache::valkey::{Endpoint, Password, ValkeyCache};
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The ACL user the cache connects as.
pub const CACHE_USER: &str = "cache";
/// The ACL user the tests inspect and reconfigure the server with.
pub const ADMIN_USER: &str = "admin";

struct Server {
    endpoint: Endpoint,
    /// Where the test CA's certificate is (removed with the server).
    ca_file: std::path::PathBuf,
    password: String,
    admin_password: String,
    /// The watchdog shell. Its stdin is never written: it sees EOF only when this process ends.
    _watchdog: Mutex<(Child, ChildStdin)>,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static CLUSTER: OnceLock<Server> = OnceLock::new();

/// Starts the server; `cluster`: in cluster mode, one node holding every hash slot, as
/// ElastiCache Serverless shows itself to clients (it refuses `SELECT`, has database 0 only).
fn start_server(cluster: bool) -> Server {
    for (tool, version, fix) in [
        (
            "redis-server",
            "--version",
            "redis-server is not installed: run `make redis-server` (installs Debian's redis-server; `make test` does it)",
        ),
        (
            "openssl",
            "version",
            "openssl is not installed: run `make redis-server` (installs openssl too)",
        ),
    ] {
        assert!(
            Command::new(tool)
                .arg(version)
                .output()
                .is_ok_and(|o| o.status.success()),
            "{fix}"
        );
    }
    assert!(
        !cluster
            || Command::new("redis-cli")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
        "redis-cli is not installed: run `make redis-server` (Debian's redis-server brings redis-tools)"
    );
    let free_port = || {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port on 127.0.0.1")
            .port()
    };
    let port = free_port();
    // The cluster bus gets its own port (by default the port + 10000, which may not exist).
    let cluster_args: Vec<String> = if cluster {
        [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-port",
            &free_port().to_string(),
        ]
        .map(String::from)
        .to_vec()
    } else {
        Vec::new()
    };
    let dir = tempfile::Builder::new()
        .prefix("valkey-test-")
        .tempdir()
        .expect("a temporary directory")
        .keep();
    let password = uuid::Uuid::new_v4().simple().to_string();
    let admin_password = uuid::Uuid::new_v4().simple().to_string();
    // Certificates (a CA and a leaf for 127.0.0.1 signed by it: rustls refuses a CA as the server's own
    // certificate), then the server in the background; print its PID, wait for EOF, stop it, clean up.
    let script = r#"set -e
cd "$2"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=testkit-valkey-ca -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > san.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
  -extfile san.ext -out server.crt 2>/dev/null
chmod 600 ca.key server.key
set +e
redis-server --bind 127.0.0.1 --port 0 --tls-port "$1" \
  --tls-cert-file server.crt --tls-key-file server.key --tls-ca-cert-file ca.crt --tls-auth-clients no \
  --save '' --appendonly no --dir "$2" --databases "$5" \
  --user default off \
  --user cache on ">$3" '~conversations#*' '~messages#*' '+@all' '-@dangerous' \
  --user admin on ">$4" '~*' '&*' '+@all' "${@:6}" >server.log 2>&1 &
pid=$!
if [ $# -gt 5 ]; then
  # Cluster mode: this one node takes every slot; then wait until the cluster says it is ok.
  port=$1 admin=$4
  cli() { REDISCLI_AUTH="$admin" redis-cli --tls --cacert ca.crt -h 127.0.0.1 -p "$port" --user admin "$@"; }
  for _ in $(seq 400); do
    [ "$(cli CLUSTER ADDSLOTSRANGE 0 16383 2>/dev/null)" = OK ] && break; sleep 0.05
  done
  for _ in $(seq 400); do
    cli CLUSTER INFO 2>/dev/null | grep -q cluster_state:ok && break; sleep 0.05
  done
fi
echo "$pid"; cat >/dev/null; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; cd /; rm -rf "$2"; exit 0"#;
    let mut child = Command::new("bash")
        .args([
            "-c",
            script,
            "valkey-test",
            &port.to_string(),
            &dir.display().to_string(),
            &password,
            &admin_password,
            &DATABASES.to_string(),
        ])
        .args(&cluster_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("bash to start redis-server");
    let mut pid = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut pid)
        .expect("redis-server's PID");
    assert!(
        !pid.trim().is_empty(),
        "the certificates for redis-server could not be made with openssl in {}",
        dir.display()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server (pid {}) did not listen on 127.0.0.1:{port} within 20 s; its log: {}",
            pid.trim(),
            dir.join("server.log").display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let ca = std::fs::read(dir.join("ca.crt")).expect("the test CA's certificate");
    Server {
        endpoint: Endpoint::new("127.0.0.1", port).with_root_certificate(ca),
        ca_file: dir.join("ca.crt"),
        password,
        admin_password,
        _watchdog: Mutex::new({
            let stdin = child.stdin.take().expect("piped stdin");
            (child, stdin)
        }),
    }
}

fn server() -> &'static Server {
    SERVER.get_or_init(|| start_server(false))
}

/// Logical databases of the server: each [`Database`] its own, so tests running at once never share keys.
const DATABASES: i64 = 1000;

/// Database 0 is `ddb`'s ([`ddb_environment`]: it connects as the function does, to database 0).
static NEXT_DATABASE: AtomicI64 = AtomicI64::new(1);

/// One logical database of this test binary's server (TLS, 127.0.0.1, the test CA as the only root).
#[derive(Clone)]
pub struct Database {
    server: &'static Server,
    endpoint: Endpoint,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// A database no other test of this binary uses. Starts the server on first use.
pub fn database() -> Database {
    let n = NEXT_DATABASE.fetch_add(1, Ordering::Relaxed);
    assert!(n < DATABASES, "more than {DATABASES} Valkey test databases");
    Database {
        server: server(),
        endpoint: server().endpoint.clone().with_database(n),
    }
}

impl Database {
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint.clone()
    }

    /// The cache as the function would use it, as the `cache` user with its password.
    pub fn cache(&self) -> ValkeyCache {
        self.cache_as(CACHE_USER, &self.server.password)
    }

    /// A cache connecting as another user of this server (made with [`set_user`]).
    pub fn cache_as(&self, user: &str, password: &str) -> ValkeyCache {
        ValkeyCache::new(
            self.endpoint.clone(),
            user,
            Arc::new(Password::new(password.to_owned())),
        )
    }

    /// A connection to this database as `admin`, to look at keys behind the cache's back.
    pub async fn admin(&self) -> redis::aio::MultiplexedConnection {
        self.endpoint
            .connect(ADMIN_USER, &self.server.admin_password)
            .await
            .expect("connect to the test redis-server as admin")
    }
}

/// The environment that points `ddb` at this server's database 0 as the `cache` user: the Valkey
/// settings the function reads, and ddb's local ones (`VALKEY_PASSWORD`, `VALKEY_CA_FILE`).
pub fn ddb_environment() -> Vec<(&'static str, String)> {
    let server = server();
    vec![
        (
            "VALKEY_ENDPOINT",
            format!("{}:{}", server.endpoint.host, server.endpoint.port),
        ),
        ("VALKEY_USER", CACHE_USER.to_owned()),
        ("VALKEY_CACHE_NAME", "local".to_owned()),
        ("VALKEY_PASSWORD", server.password.clone()),
        ("VALKEY_CA_FILE", server.ca_file.display().to_string()),
    ]
}

/// Database 0 of a second server of this test binary, in cluster mode: one node that holds every
/// hash slot, which is how ElastiCache Serverless presents itself (it is cluster-mode only and
/// refuses `SELECT`). Tests on it share its keys: give them keys of their own.
pub fn cluster_database() -> Database {
    let server = CLUSTER.get_or_init(|| start_server(true));
    Database {
        server,
        endpoint: server.endpoint.clone(),
    }
}

/// `ddb`'s database ([`ddb_environment`]), to look at what it left there.
pub fn ddb_database() -> Database {
    Database {
        server: server(),
        endpoint: server().endpoint.clone(),
    }
}

/// `ACL SETUSER user rules...`: creates or changes a user (rules as in redis.conf, e.g. `-del`).
pub async fn set_user(user: &str, rules: &[&str]) {
    let mut admin = database().admin().await;
    let mut command = redis::cmd("ACL");
    command.arg("SETUSER").arg(user);
    for rule in rules {
        command.arg(*rule);
    }
    command
        .query_async::<()>(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("ACL SETUSER {user} {rules:?}: {e}"));
}
