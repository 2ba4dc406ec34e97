//! No message text in any log line of the real binaries, at any log setting.
//!
//! The Lambda binary (`messaging-stream`) runs as Lambda runs it: against the test kit's stub of the
//! Lambda Runtime API on 127.0.0.1, which hands it one event and records its answer, with
//! the table on this test binary's DynamoDB Local. The event's messages (a good one and a
//! malformed one) and the group rows it moves carry a marker, so the marker flows through the raw
//! event, the SDK's request and response bodies and the handler. Every `AWS_LAMBDA_LOG_LEVEL`, both
//! `AWS_LAMBDA_LOG_FORMAT`s and the `RUST_LOG` values that used to open a way (TRACE, directives on
//! the SDK's sub-targets, hyper, lambda_runtime, empty) are run; the same `RUST_LOG` values for
//! `ddb replay`. Each run: no marker in stdout or stderr, the rows moved, the batch summary and the
//! malformed record's WARN present whenever the level admits them, the EMF document always.

use testkit::bin::{self, Flags as _};
use testkit::items::{group_row, message_record};
use testkit::local;
use testkit::runtime_api::{RuntimeStub, Seen};

use futures::StreamExt;
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::Duration;
use testkit::local::TestTable;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

const INVOCATION: &str = "/2018-06-01/runtime/invocation/";
/// The request id the stub gives the first event it hands out.
const REQUEST_ID: &str = "request-1";
const SUMMARY: &str = "batch processed";
const MALFORMED_WARN: &str = "skipping malformed record";
/// How long one run may take before the test fails (the binary is stopped by its PID either way).
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// What one run of a binary printed, and how it ended.
struct Run {
    name: String,
    stdout: String,
    stderr: String,
}

impl Run {
    fn both(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// The lines that hold `needle` (the marker is never printed: only where it was found).
    fn leaks(&self, needle: &str) -> Vec<String> {
        self.both()
            .lines()
            .enumerate()
            .filter(|(_, line)| line.contains(needle))
            .map(|(i, line)| format!("line {i}: {} chars", line.len()))
            .collect()
    }
}

fn read_all(pipe: impl AsyncRead + Unpin + Send + 'static) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut pipe = pipe;
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes).await;
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The first answer the binary posted (path, body).
async fn first_answer(api: &mut RuntimeStub) -> (String, String) {
    loop {
        if let Seen::Posted { path, body, .. } = api.seen.recv().await.expect("the stub is running")
        {
            return (path, body);
        }
    }
}

/// Runs the Lambda binary on `event` with `vars`, until it posts its answer; then stops it by its
/// PID. Returns what it printed and the answer (path, body).
async fn run_lambda(
    name: String,
    table: &str,
    vars: Vec<(&'static str, &'static str)>,
    event: &Value,
) -> (Run, (String, String)) {
    let mut api = RuntimeStub::start(vec![event.clone()])
        .await
        .expect("a free port on 127.0.0.1");
    // None of the developer's settings: the runs set their own (the kit's command).
    let mut command = Command::from(bin::command(env!("CARGO_BIN_EXE_messaging-stream")));
    command
        .env("AWS_LAMBDA_RUNTIME_API", &api.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", "messaging-stream-privacy")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("TABLE_NAME", table)
        .env("AWS_ENDPOINT_URL_DYNAMODB", local::endpoint())
        .envs(vars)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .expect("start target/debug/messaging-stream");
    let stdout = read_all(child.stdout.take().unwrap());
    let stderr = read_all(child.stderr.take().unwrap());
    let answer = tokio::select! {
        answer = first_answer(&mut api) => Ok(answer),
        status = child.wait() => Err(format!("exited before answering: {status:?}")),
        () = tokio::time::sleep(RUN_TIMEOUT) => Err(format!("no answer within {RUN_TIMEOUT:?}")),
    };
    // Stopped by its PID (SIGKILL to this child only), then reaped; its pipes then reach EOF.
    let _ = child.kill().await;
    let run = Run {
        name,
        stdout: stdout.await.unwrap(),
        stderr: stderr.await.unwrap(),
    };
    match answer {
        Ok(answer) => (run, answer),
        Err(why) => panic!(
            "{}: the Lambda binary {why}; its stderr:\n{}",
            run.name, run.stderr
        ),
    }
}

/// One run's settings and what it must show.
struct Case {
    vars: Vec<(&'static str, &'static str)>,
    summary: bool,
    warn: bool,
}

/// The RUST_LOG values that opened a way to the logs (or silenced the function) before.
const RUST_LOGS: &[&str] = &[
    "trace",
    "aws_smithy_runtime::client::orchestrator=trace",
    "aws_smithy_runtime::client=trace",
    "hyper=trace",
    "lambda_runtime=trace",
    "",
];

fn lambda_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for format in ["Text", "JSON"] {
        // Every level Lambda offers; INFO and more verbose show the summary, WARN and more the warning.
        for (level, summary, warn) in [
            ("TRACE", true, true),
            ("DEBUG", true, true),
            ("INFO", true, true),
            ("WARN", false, true),
            ("ERROR", false, false),
            ("FATAL", false, false),
        ] {
            cases.push(Case {
                vars: vec![
                    ("AWS_LAMBDA_LOG_FORMAT", format),
                    ("AWS_LAMBDA_LOG_LEVEL", level),
                ],
                summary,
                warn,
            });
        }
        // RUST_LOG alone (as a developer runs the binary), and under the levels Lambda sets.
        for rust_log in RUST_LOGS {
            for level in [None, Some("INFO"), Some("TRACE")] {
                let mut vars = vec![("AWS_LAMBDA_LOG_FORMAT", format), ("RUST_LOG", *rust_log)];
                vars.extend(level.map(|level| ("AWS_LAMBDA_LOG_LEVEL", level)));
                cases.push(Case {
                    vars,
                    summary: true,
                    warn: true,
                });
            }
        }
    }
    cases
}

/// The marker every text of this test holds, unique to the test run.
fn marker() -> String {
    format!("pmark{}", uuid::Uuid::new_v4().simple())
}

const OLD: &str = "2025-01-01T00:00:00+00:00";
const NEW: &str = "2025-06-01T00:00:00+00:00";

/// Two rows of `group` with marked texts, and the event of a marked new message to it plus a
/// malformed record (no sort key) whose text is marked too.
async fn group_and_event(table: &TestTable, group: &str, marker: &str) -> Value {
    table
        .put([
            group_row(
                &format!("a-{group}"),
                group,
                OLD,
                &format!("{marker}-old-a"),
            ),
            group_row(
                &format!("b-{group}"),
                group,
                OLD,
                &format!("{marker}-old-b"),
            ),
        ])
        .await;
    let good = message_record(group, NEW, &format!("{marker}-new-{group}"), "100");
    let mut malformed = message_record(group, NEW, &format!("{marker}-bad-{group}"), "101");
    malformed["dynamodb"]["Keys"]
        .as_object_mut()
        .unwrap()
        .remove("sk");
    json!({ "Records": [good, malformed] })
}

/// The group's rows moved to the new message: the marked texts did go through the SDK.
async fn assert_moved(table: &TestTable, group: &str, marker: &str, name: &str) {
    let rows = table.row_summaries(group).await;
    assert_eq!(rows.len(), 2, "{name}: {} rows", rows.len());
    let new_text = format!("{marker}-new-{group}");
    assert!(
        rows.iter()
            .all(|(_, sk, text)| sk == NEW && *text == new_text),
        "{name}: the rows of {group} did not move"
    );
}

fn check_logs(run: &Run, marker: &str, summary: bool, warn: bool) {
    let leaks = run.leaks(marker);
    assert!(
        leaks.is_empty(),
        "{}: message text in {} output lines ({leaks:?})",
        run.name,
        leaks.len()
    );
    let both = run.both();
    assert_eq!(
        both.contains(SUMMARY),
        summary,
        "{}: the summary line {}; stderr:\n{}",
        run.name,
        if summary { "is missing" } else { "is there" },
        run.stderr
    );
    assert_eq!(
        both.contains(MALFORMED_WARN),
        warn,
        "{}: the malformed record's WARN {}",
        run.name,
        if warn { "is missing" } else { "is there" },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_binary_never_logs_message_text_at_any_setting() {
    let table = TestTable::new().await;
    let marker = marker();
    let cases = lambda_cases();
    let mut runs = Vec::new();
    for (i, case) in cases.into_iter().enumerate() {
        let group = format!("g{i}");
        let event = group_and_event(&table, &group, &marker).await;
        runs.push((group, event, case));
    }
    let table_name = table.table().to_owned();
    let results: Vec<_> = futures::stream::iter(runs.into_iter().map(|(group, event, case)| {
        let table_name = table_name.clone();
        async move {
            let name = format!("messaging-stream {:?}", case.vars);
            let (run, answer) = run_lambda(name, &table_name, case.vars.clone(), &event).await;
            (group, case, run, answer)
        }
    }))
    .buffer_unordered(4)
    .collect()
    .await;

    assert_eq!(results.len(), 48);
    for (group, case, run, (path, body)) in &results {
        assert_eq!(
            path,
            &format!("{INVOCATION}{REQUEST_ID}/response"),
            "{}: answered {path}",
            run.name
        );
        let response: Value = serde_json::from_str(body).unwrap();
        assert_eq!(response, json!({"batchItemFailures": []}), "{}", run.name);
        assert_moved(&table, group, &marker, &run.name).await;
        check_logs(run, &marker, case.summary, case.warn);
        // The counts reach the operator at every level: the EMF document is not a log line.
        let emf: Vec<Value> = run
            .stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|doc| doc.get("_aws").is_some())
            .collect();
        assert_eq!(emf.len(), 1, "{}: {} EMF documents", run.name, emf.len());
        if case.vars.contains(&("AWS_LAMBDA_LOG_FORMAT", "JSON")) {
            for line in run.stdout.lines() {
                assert!(
                    serde_json::from_str::<Value>(line).is_ok(),
                    "{}: a stdout line that is not JSON",
                    run.name
                );
            }
        }
    }
    // The verbose settings really were verbose (their SDK and runtime lines, capped at DEBUG, got
    // through): a cap that silenced everything would pass the checks above.
    let lines = |vars: &[(&str, &str)]| {
        results
            .iter()
            .find(|(_, case, _, _)| case.vars == vars)
            .map(|(_, _, run, _)| run.both().lines().count())
            .unwrap()
    };
    let info = lines(&[
        ("AWS_LAMBDA_LOG_FORMAT", "Text"),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
    ]);
    let trace = lines(&[
        ("AWS_LAMBDA_LOG_FORMAT", "Text"),
        ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
    ]);
    assert!(
        trace > info + 20,
        "TRACE printed {trace} lines, INFO {info}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddb_replay_never_logs_message_text_at_any_setting() {
    let table = TestTable::new().await;
    let marker = marker();
    let dir = tempfile::tempdir().unwrap();
    // (environment, flags) of each run
    type Setting = (Vec<(&'static str, &'static str)>, Vec<&'static str>);
    let mut settings: Vec<Setting> = RUST_LOGS
        .iter()
        .map(|rust_log| (vec![("RUST_LOG", *rust_log)], vec![]))
        .collect();
    settings.push((vec![], vec!["--verbose"]));
    settings.push((vec![("RUST_LOG", "trace")], vec!["--verbose"]));
    let mut runs = Vec::new();
    for (i, (vars, flags)) in settings.into_iter().enumerate() {
        let group = format!("r{i}");
        let event = group_and_event(&table, &group, &marker).await;
        let file = dir.path().join(format!("{group}.json"));
        std::fs::write(&file, event.to_string()).unwrap();
        runs.push((group, file, vars, flags));
    }
    let results: Vec<_> =
        futures::stream::iter(runs.into_iter().map(|(group, file, vars, flags)| {
            let table_name = table.table().to_owned();
            async move {
                let mut command = bin::command(bin::ddb());
                command.endpoint(local::endpoint()).table(&table_name);
                let output = Command::from(command)
                    .args(&flags)
                    .arg("replay")
                    .arg(&file)
                    .envs(vars.iter().copied())
                    .stdin(Stdio::null())
                    .kill_on_drop(true)
                    .output();
                let output = tokio::time::timeout(RUN_TIMEOUT, output)
                    .await
                    .expect("ddb replay finished")
                    .expect("run target/debug/ddb");
                let run = Run {
                    name: format!("ddb {flags:?} replay, {vars:?}"),
                    stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                };
                (group, output.status, run)
            }
        }))
        .buffer_unordered(4)
        .collect()
        .await;

    assert_eq!(results.len(), RUST_LOGS.len() + 2);
    for (group, status, run) in &results {
        assert!(
            status.success(),
            "{}: {status}; stderr:\n{}",
            run.name,
            run.stderr
        );
        assert_eq!(
            serde_json::from_str::<Value>(run.stdout.trim()).ok(),
            Some(json!({"batchItemFailures": []})),
            "{}",
            run.name
        );
        assert_moved(&table, group, &marker, &run.name).await;
        check_logs(run, &marker, true, true);
    }
}
