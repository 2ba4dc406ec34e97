//! Our binaries as the tests run them. [`command`] is one of them (or any program) with none of
//! the developer's settings, cleared one way for every test: no `AWS_*` variable (endpoints, credentials, region,
//! profile, Lambda's own), no profile file (`AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE`
//! are empty), none of the app's variables (`TABLE_NAME`, `RUST_LOG`, ...): a test sets what it
//! relies on after it. [`Flags`] adds `ddb`'s `--endpoint-url` and `--table`.
//!
//! Cargo names a binary to the integration tests of its own package only (`CARGO_BIN_EXE_<name>`),
//! and `ddb` is another package of the workspace: for the root tests, [`ddb()`] finds it where cargo
//! puts it, beside the test executables' `deps/` folder. `cargo test` of the workspace (make test)
//! builds it with the tests; a missing or stale one fails loudly with the fix.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// The settings of the Lambda and of `ddb` read from the environment besides the `AWS_*` ones
/// (src/config.rs, src/metrics.rs, src/logging.rs, ddb's reads and `ddb local`, the table renderer).
const APP_VARIABLES: &[&str] = &[
    "TABLE_NAME",
    "GROUP_INDEX_NAME",
    "GROUP_CONCURRENCY",
    "CONDITION_RETRIES",
    "CONFLICT_RETRIES",
    "DEADLINE_MARGIN_MS",
    "PREVIEW_MAX_BYTES",
    "CACHE_TABLE_NAME",
    "CACHE_TTL_SECONDS",
    "VALKEY_ENDPOINT",
    "VALKEY_USER",
    "VALKEY_CACHE_NAME",
    "VALKEY_PASSWORD",
    "VALKEY_CA_FILE",
    "METRICS",
    "METRICS_NAMESPACE",
    "RUST_LOG",
    "DDB_SHARED_DIR",
    "COLUMNS",
];

/// `binary` (a path, or a program on PATH) with the developer's settings cleared (see the module's
/// doc); PATH, HOME and the rest of the environment stay.
pub fn command(binary: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name
            .to_str()
            .is_some_and(|name| name.starts_with("AWS_") || APP_VARIABLES.contains(&name))
        {
            command.env_remove(name);
        }
    }
    // No profile file: the SDK reads empty ones instead of ~/.aws/config and ~/.aws/credentials.
    command
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    command
}

/// `ddb`'s connection flags on a [`command`].
pub trait Flags {
    /// `--endpoint-url <url>` (`aws` for AWS's own endpoints).
    fn endpoint(&mut self, url: &str) -> &mut Self;
    /// `--table <name>`.
    fn table(&mut self, name: &str) -> &mut Self;
}

impl Flags for Command {
    fn endpoint(&mut self, url: &str) -> &mut Self {
        self.args(["--endpoint-url", url])
    }

    fn table(&mut self, name: &str) -> &mut Self {
        self.args(["--table", name])
    }
}

/// What a run printed on stdout, as text.
pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What a run printed on stderr, as text.
pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Each line a run printed on stdout, as JSON (a line that is not fails the test, naming it).
pub fn json_lines(output: &std::process::Output) -> Vec<serde_json::Value> {
    stdout(output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// The run, which must have succeeded (else the test fails, showing it).
pub fn ok(output: std::process::Output) -> std::process::Output {
    assert!(output.status.success(), "{output:?}");
    output
}

/// The workspace's `ddb` ([`ddb()`], settings cleared) on `table` at `endpoint`: add its arguments.
pub fn ddb_on(endpoint: &str, table: &str) -> Command {
    let mut ddb = command(ddb());
    ddb.endpoint(endpoint).table(table);
    ddb
}

/// `ddb args` on `table` at `endpoint`, run to its end.
pub fn run_ddb(endpoint: &str, table: &str, args: &[&str]) -> std::process::Output {
    ddb_on(endpoint, table)
        .args(args)
        .output()
        .expect("run ddb")
}

/// A table of its own on this test binary's DynamoDB Local, made and seeded by `ddb schema-load`
/// and `ddb seed`: (endpoint, table).
pub fn seeded_table() -> (&'static str, String) {
    let endpoint = crate::local::endpoint();
    let table = crate::local::unique_table();
    for step in ["schema-load", "seed"] {
        let output = run_ddb(endpoint, &table, &[step]);
        assert!(output.status.success(), "ddb {step}: {output:?}");
    }
    (endpoint, table)
}

/// The path of the workspace's `ddb` binary, built from the current sources.
pub fn ddb() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/ddb
    let folder = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps");
    let path = folder
        .join("ddb")
        .with_extension(std::env::consts::EXE_EXTENSION);
    let fix = "build it: `cargo build -p ddb` (or run the whole workspace's tests: `make test`)";
    let built = std::fs::metadata(&path)
        .and_then(|meta| meta.modified())
        .unwrap_or_else(|_| panic!("{} is not there: {fix}", path.display()));
    if let Some(source) = newest_source(&crate::workspace_root()) {
        assert!(
            source.1 <= built,
            "{} is older than {}: {fix}",
            path.display(),
            source.0.display()
        );
    }
    path
}

/// The newest Rust source of the two packages the binary is built from (the Lambda's `src/` and
/// `ddb/src/`).
fn newest_source(root: &Path) -> Option<(PathBuf, SystemTime)> {
    let mut newest: Option<(PathBuf, SystemTime)> = None;
    let mut folders = vec![root.join("src"), root.join("ddb/src")];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                if let Ok(modified) = entry.metadata().and_then(|meta| meta.modified()) {
                    if newest.as_ref().is_none_or(|(_, time)| modified > *time) {
                        newest = Some((path, modified));
                    }
                }
            }
        }
    }
    newest
}
