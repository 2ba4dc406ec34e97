//! Issue 16, item 6: the tools find their own files. `ddb local` runs the script of the checkout it is run in
//! (not the one it was built in) and its `stop` never signals a process that is not DynamoDB Local; the scripts
//! and make targets ask cargo where the binaries are (CARGO_TARGET_DIR honoured). None of this needs a server.

use std::path::Path;
use std::process::{Command, Output};

fn root() -> std::path::PathBuf {
    testkit::workspace_root()
}

fn ddb_local(dir: &Path, shared: &Path, args: &[&str]) -> Output {
    testkit::bin::command(env!("CARGO_BIN_EXE_ddb"))
        .arg("local")
        .args(args)
        .env("DDB_SHARED_DIR", shared)
        .current_dir(dir)
        .output()
        .expect("run ddb local")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Kills the `sleep` a test started, by its PID, whatever the test's outcome.
struct Sleeper(std::process::Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn local_stop_leaves_a_process_that_is_not_dynamodb_local_alone() {
    let shared = tempfile::tempdir().unwrap();
    let mut sleeper = Sleeper(Command::new("sleep").arg("300").spawn().expect("sleep"));
    let pid = sleeper.0.id();
    // A stale PID file: after a reboot, its number belongs to another process.
    let pidfile = shared.path().join("dynamodb-local-shared.pid");
    std::fs::write(&pidfile, format!("{pid}\n")).unwrap();

    let stopped = ddb_local(&root(), shared.path(), &["stop"]);
    assert!(stopped.status.success(), "{stopped:?}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        sleeper.0.try_wait().unwrap().is_none(),
        "ddb local stop signalled sleep (pid {pid})"
    );
    assert!(
        text(&stopped.stderr).contains(&format!(
            "names pid {pid}, which is not DynamoDB Local (sleep 300"
        )) && text(&stopped.stderr).contains("left alone, stale pid file removed"),
        "{stopped:?}"
    );
    assert!(!pidfile.exists(), "the stale PID file is removed");
    // Nor does status take it for a running server, nor start think one is already there.
    std::fs::write(&pidfile, format!("{pid}\n")).unwrap();
    let status = ddb_local(&root(), shared.path(), &["status", "--port", "1"]);
    assert_eq!(status.status.code(), Some(3), "{status:?}");
    assert!(sleeper.0.try_wait().unwrap().is_none());
}

#[test]
fn local_runs_the_script_of_the_checkout_it_is_run_in() {
    // Another checkout, whose script only says where it is and what it was asked.
    let checkout = tempfile::tempdir().unwrap();
    let scripts = checkout.path().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(
        scripts.join("dynamodb-local.sh"),
        "#!/usr/bin/env bash\necho \"other checkout's script: $*\"\n",
    )
    .unwrap();
    let deep = checkout.path().join("src/deep");
    std::fs::create_dir_all(&deep).unwrap();
    let shared = tempfile::tempdir().unwrap();
    let ran = ddb_local(&deep, shared.path(), &["status", "--port", "8123"]);
    assert!(ran.status.success(), "{ran:?}");
    let pidfile = shared.path().join("dynamodb-local-shared.pid");
    assert_eq!(
        text(&ran.stdout),
        format!(
            "other checkout's script: status {} 8123\n",
            pidfile.display()
        )
    );
    // Outside any checkout: an error that says so, not another checkout's server.
    let nowhere = tempfile::tempdir().unwrap();
    let refused = ddb_local(nowhere.path(), shared.path(), &["stop"]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(
        text(&refused.stderr).contains("no scripts/dynamodb-local.sh in")
            && text(&refused.stderr).contains("run ddb local inside a messaging-stream checkout"),
        "{refused:?}"
    );
}

fn target_dir(set: Option<&Path>) -> String {
    let mut command = Command::new("bash");
    command
        .arg(root().join("scripts/target-dir.sh"))
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .current_dir(std::env::temp_dir());
    match set {
        Some(dir) => command.env("CARGO_TARGET_DIR", dir),
        None => command.env_remove("CARGO_TARGET_DIR"),
    };
    let output = command.output().expect("scripts/target-dir.sh");
    assert!(output.status.success(), "{output:?}");
    text(&output.stdout).trim_end().to_owned()
}

/// `make demo` and `make lambda-invoke` run `$(scripts/target-dir.sh)/debug/ddb`: cargo's answer.
#[test]
fn the_scripts_find_the_binaries_where_cargo_builds_them() {
    let elsewhere = tempfile::tempdir().unwrap();
    assert_eq!(
        target_dir(Some(elsewhere.path())),
        elsewhere.path().display().to_string()
    );
    assert_eq!(
        target_dir(None),
        root().join("target").display().to_string()
    );
    // And nothing runs a binary from a hard-coded target/ any more.
    let mut offenders = Vec::new();
    for folder in ["scripts", "mk"] {
        for entry in std::fs::read_dir(root().join(folder)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for (number, line) in text.lines().enumerate() {
                if !line.trim_start().starts_with('#')
                    && ["target/debug/", "target/release/"]
                        .iter()
                        .any(|p| line.contains(p))
                {
                    offenders.push(format!("{}:{}: {line}", path.display(), number + 1));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

/// What the scripts start takes a free port: no fixed 8000 (the shared DynamoDB Local's) or 9000.
#[test]
fn lambda_invoke_and_bench_reads_leave_the_shared_instance_alone() {
    let local = std::fs::read_to_string(root().join("mk/local.mk")).unwrap();
    let script = std::fs::read_to_string(root().join("scripts/lambda-invoke.sh")).unwrap();
    assert!(
        !local.contains("9000") && !local.contains("$(DDB_PORT)"),
        "{local}"
    );
    assert!(
        script.contains("ddb_port=${DDB_PORT:-$(free_port)}")
            && script.contains("invoke_port=${INVOKE_PORT:-$(free_port)}"),
        "{script}"
    );
    let bench = std::fs::read_to_string(root().join("mk/bench.mk")).unwrap();
    let reads = bench
        .lines()
        .find(|l| l.starts_with("bench-reads:"))
        .expect("a bench-reads target");
    assert!(
        !reads
            .split_whitespace()
            .any(|word| word == "dynamodb-local"),
        "bench-reads must not start the shared instance: {reads}"
    );
}
