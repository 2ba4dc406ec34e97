//! Issue 10: the local loop with a team's own data, through the `ddb` binary on DynamoDB Local:
//! made-up users, readable errors, Unix manners, sample events, replay's exit codes, schema checks,
//! and the Lambda binary refusing bad settings at start-up.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamSpecification, StreamViewType,
};
use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use testkit::bin::{self, json_lines, ok, run_ddb as ddb, stderr, stdout};
use testkit::local;

fn ddb_command(endpoint: &str, table: &str, args: &[&str]) -> Command {
    let mut command = bin::ddb_on(endpoint, table);
    command.args(args);
    command
}

fn ddb_with_stdin(endpoint: &str, table: &str, args: &[&str], input: &[u8]) -> Output {
    let mut child = ddb_command(endpoint, table, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ddb");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn new_table() -> (&'static str, String) {
    let endpoint = local::endpoint();
    let table = local::unique_table();
    ok(ddb(endpoint, &table, &["schema-load"]));
    (endpoint, table)
}

#[test]
fn two_made_up_users_talk_through_ddb_only() {
    let (endpoint, table) = new_table();
    let (ann, bob) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let refused = ddb(
        endpoint,
        &table,
        &["new-conversation", "--from", &ann, "--to", &bob, "hi"],
    );
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--name and --handle"),
        "{}",
        stderr(&refused)
    );

    let created = ok(ddb(
        endpoint,
        &table,
        &[
            "new-conversation",
            "--from",
            &ann,
            "--name",
            "Ann Lee",
            "--handle",
            "ann",
            "--to",
            &bob,
            "--to-name",
            "Bob Roe",
            "--to-handle",
            "bob",
            "--json",
            "hi Bob",
        ],
    ));
    let created = &json_lines(&created)[0];
    let group = created["message_group_uuid"].as_str().unwrap().to_owned();

    // Bob's names come from the group's rows (Ann's row describes him).
    let sent = ok(ddb(
        endpoint,
        &table,
        &[
            "send", "--group", &group, "--from", &bob, "--json", "hi Ann",
        ],
    ));
    let sent_at = json_lines(&sent)[0]["created_at"].clone();
    // An older message, at a given instant in the naive form.
    ok(ddb(
        endpoint,
        &table,
        &[
            "send",
            "--group",
            &group,
            "--from",
            &ann,
            "--at",
            "2024-01-01T00:00:00.5",
            "late",
        ],
    ));
    let bad_at = ddb(
        endpoint,
        &table,
        &[
            "send",
            "--group",
            &group,
            "--from",
            &ann,
            "--at",
            "yesterday",
            "x",
        ],
    );
    assert!(!bad_at.status.success());
    assert!(
        stderr(&bad_at).contains("--at \"yesterday\" is not a timestamp"),
        "{}",
        stderr(&bad_at)
    );

    let messages = json_lines(&ok(ddb(endpoint, &table, &["messages", &group, "--json"])));
    let shown: Vec<(&str, &str, &str)> = messages
        .iter()
        .map(|m| {
            (
                m["message"].as_str().unwrap(),
                m["handle"].as_str().unwrap(),
                m["display_name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("hi Ann", "bob", "Bob Roe"),
            ("hi Bob", "ann", "Ann Lee"),
            ("late", "ann", "Ann Lee")
        ]
    );
    assert_eq!(messages[0]["created_at"], sent_at);
    for (owner, other) in [(&ann, "bob"), (&bob, "ann")] {
        let top = &json_lines(&ok(ddb(
            endpoint,
            &table,
            &["conversations", owner, "--json"],
        )))[0];
        assert_eq!(top["uuid"], group.as_str());
        assert_eq!(top["handle"], other);
    }

    // Nothing for a typo or an unknown user: words and a non-zero exit; --json prints nothing.
    let unknown = ddb(endpoint, &table, &["conversations", "alcie"]);
    assert!(!unknown.status.success());
    assert!(stdout(&unknown).is_empty());
    assert!(
        stderr(&unknown).contains("nothing found for user \"alcie\""),
        "{}",
        stderr(&unknown)
    );
    let unknown_json = ddb(
        endpoint,
        &table,
        &["conversations", &uuid::Uuid::new_v4().to_string(), "--json"],
    );
    assert!(!unknown_json.status.success());
    assert_eq!(stdout(&unknown_json), "");
    let no_messages = ddb(endpoint, &table, &["messages", "no-such-group"]);
    assert!(!no_messages.status.success());
    assert!(
        stderr(&no_messages).contains("nothing found for group"),
        "{}",
        stderr(&no_messages)
    );
}

#[test]
fn errors_are_one_readable_line_with_the_fix() {
    let endpoint = local::endpoint();
    let missing = local::unique_table();
    let output = ddb(endpoint, &missing, &["scan"]);
    assert!(!output.status.success());
    let text = stderr(&output);
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("ddb: Scan on table {missing} failed (ResourceNotFoundException): Cannot do operations on a non-existent table")
    );
    assert_eq!(
        lines.next().unwrap().trim(),
        format!("create it with ddb schema-load --table {missing}")
    );
    assert!(text.len() < 400, "no SDK dump: {text}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let output = ddb(
        &format!("http://127.0.0.1:{port}"),
        "cruddur-messages",
        &["conversations", "londo"],
    );
    assert!(!output.status.success());
    let text = stderr(&output);
    assert_eq!(
        text.lines().next().unwrap(),
        "ddb: Query on table cruddur-messages failed (connection refused): nothing answers at the endpoint",
        "{text}"
    );
    assert!(
        text.contains("is DynamoDB Local running? make dynamodb-local"),
        "{text}"
    );
    assert!(text.len() < 400, "no SDK dump: {text}");

    let output = ddb("127.0.0.1:8000", "t", &["list-tables"]);
    assert!(!output.status.success());
    assert_eq!(
        stderr(&output).lines().next().unwrap(),
        "ddb: endpoint \"127.0.0.1:8000\" has no scheme: use http://127.0.0.1:8000"
    );
    // Each cause is said once.
    let output = ddb(
        endpoint,
        "t",
        &["watch", "--once", "--template", "/nonexistent.yaml"],
    );
    assert!(!output.status.success());
    assert_eq!(
        stderr(&output).matches("No such file").count(),
        1,
        "{}",
        stderr(&output)
    );
    // The environment's endpoint is checked too, and the flag wins over it.
    let env = bin::command(bin::ddb())
        .args(["list-tables"])
        .env("AWS_ENDPOINT_URL_DYNAMODB", "127.0.0.1:8000")
        .output()
        .unwrap();
    assert!(!env.status.success());
    assert!(
        stderr(&env).contains("AWS_ENDPOINT_URL_DYNAMODB=\"127.0.0.1:8000\""),
        "{}",
        stderr(&env)
    );
}

#[test]
fn a_profile_endpoint_and_any_credentials_reach_the_same_tables() {
    let (endpoint, table) = new_table();
    let home = tempfile::tempdir().unwrap();
    let aws = home.path().join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("config"),
        format!("[profile local]\nregion = us-east-1\nendpoint_url = {endpoint}\n"),
    )
    .unwrap();
    // The profile files where the SDK looks by default (the kit's command has none, and no key).
    let listed = bin::command(bin::ddb())
        .args(["--profile", "local", "list-tables", "--json"])
        .env("HOME", home.path())
        .env_remove("AWS_CONFIG_FILE")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .output()
        .unwrap();
    let listed = ok(listed);
    assert!(
        json_lines(&listed)
            .iter()
            .any(|t| t["table"] == table.as_str()),
        "the profile's endpoint_url was used: {listed:?}"
    );
}

#[test]
fn closed_stdout_ends_quietly_and_json_loses_nothing() {
    let (endpoint, table) = new_table();
    ok(ddb(endpoint, &table, &["seed"]));
    let piped = bin::command("bash")
        .args([
            "-o",
            "pipefail",
            "-c",
            &format!("\"$0\" --endpoint-url {endpoint} --table {table} scan | head -1"),
        ])
        .arg(bin::ddb())
        .output()
        .unwrap();
    assert!(piped.status.success(), "{piped:?}");
    assert!(stdout(&piped).starts_with("pk "));
    assert!(!stderr(&piped).contains("panicked"), "{}", stderr(&piped));
    // A reader gone before the first line: every write fails with EPIPE.
    let mut child = ddb_command(endpoint, &table, &["scan", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let closed = child.wait_with_output().unwrap();
    assert!(closed.status.success(), "{closed:?}");
    assert_eq!(stderr(&closed), "", "quietly");

    // An item of every type, written with the SDK.
    let item = HashMap::from([
        ("pk".to_owned(), AttributeValue::S("OTHER#types".into())),
        (
            "sk".to_owned(),
            AttributeValue::S("line one\nline two".into()),
        ),
        (
            "big".to_owned(),
            AttributeValue::N("12345678901234567890123".into()),
        ),
        (
            "tiny".to_owned(),
            AttributeValue::N("0.000000000000000000000000001".into()),
        ),
        (
            "blob".to_owned(),
            AttributeValue::B(Blob::new(vec![0u8, 159, 255])),
        ),
        ("ok".to_owned(), AttributeValue::Bool(false)),
        ("nothing".to_owned(), AttributeValue::Null(true)),
        (
            "names".to_owned(),
            AttributeValue::Ss(vec!["a".into(), "b".into()]),
        ),
        (
            "numbers".to_owned(),
            AttributeValue::Ns(vec!["1".into(), "99999999999999999999".into()]),
        ),
        (
            "blobs".to_owned(),
            AttributeValue::Bs(vec![Blob::new(vec![1u8])]),
        ),
        (
            "list".to_owned(),
            AttributeValue::L(vec![
                AttributeValue::N("1".into()),
                AttributeValue::S("x".into()),
            ]),
        ),
        (
            "map".to_owned(),
            AttributeValue::M(HashMap::from([(
                "k".to_owned(),
                AttributeValue::Bool(true),
            )])),
        ),
    ]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = local::config_for(endpoint, &table);
        let client = messaging_stream::aws::dynamodb_client(&config).await;
        client
            .put_item()
            .table_name(&table)
            .set_item(Some(item.clone()))
            .send()
            .await
            .unwrap();
    });
    let find = |args: &[&str]| -> String {
        let output = ok(ddb(endpoint, &table, &[&["scan"], args].concat()));
        stdout(&output)
            .lines()
            .find(|l| l.contains("OTHER#types"))
            .unwrap()
            .to_owned()
    };
    let plain = find(&["--json"]);
    assert!(plain.contains("\"big\":12345678901234567890123"), "{plain}");
    assert!(plain.contains("\"blob\":\"AJ//\""), "{plain}");
    assert!(
        plain.contains("\"numbers\":[1,99999999999999999999]"),
        "{plain}"
    );
    let value: serde_json::Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(value["names"], serde_json::json!(["a", "b"]));
    assert_eq!(value["nothing"], serde_json::Value::Null);
    assert_eq!(value["map"], serde_json::json!({"k": true}));
    let raw: serde_json::Value = serde_json::from_str(&find(&["--json", "--raw"])).unwrap();
    let back: serde_dynamo::Item = serde_json::from_value(raw).unwrap();
    let back: HashMap<String, AttributeValue> = back.into();
    assert_eq!(back, item, "--raw round-trips every type");
    // In the table, the newline does not start a new line.
    let human = stdout(&ok(ddb(endpoint, &table, &["scan"])));
    assert!(
        human
            .lines()
            .any(|l| l.contains("OTHER#types") && l.contains("line one\\nline two")),
        "{human}"
    );
}

#[test]
fn a_sample_event_replays_from_stdin_and_replay_exits_by_outcome() {
    let (endpoint, table) = new_table();
    ok(ddb(endpoint, &table, &["seed"]));
    const ANDREW_LONDO: &str = "8f1a3c5e-7b9d-4e2f-a6c8-0d4e6f8a1c05";
    let event = ok(ddb(
        endpoint,
        &table,
        &[
            "event",
            "insert",
            "--group",
            ANDREW_LONDO,
            "--at",
            "2030-01-01T00:00:00+00:00",
            "--text",
            "from the future",
            "--from",
            "londo",
            "--count",
            "2",
        ],
    ));
    let parsed: serde_json::Value = serde_json::from_slice(&event.stdout).unwrap();
    assert_eq!(parsed["Records"].as_array().unwrap().len(), 2);
    let replayed = ok(ddb_with_stdin(
        endpoint,
        &table,
        &["replay", "-"],
        &event.stdout,
    ));
    assert_eq!(
        json_lines(&replayed),
        [serde_json::json!({"batchItemFailures": []})]
    );
    let top = &json_lines(&ok(ddb(
        endpoint,
        &table,
        &["conversations", "londo", "--limit", "1", "--json"],
    )))[0];
    assert_eq!(top["created_at"], "2030-01-01T00:00:01.000000+00:00");
    assert_eq!(top["message"], "from the future");

    // The same event against a table that does not exist: the response names the record, and
    // the set-up is at fault, not the record: 1 with the fix (3 is tests/cli_edges.rs's).
    let missing = local::unique_table();
    let failed = ddb_with_stdin(endpoint, &missing, &["replay", "-"], &event.stdout);
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    let response = &json_lines(&failed)[0];
    assert_eq!(
        response["batchItemFailures"][0]["itemIdentifier"],
        parsed["Records"][0]["dynamodb"]["SequenceNumber"]
    );
    assert!(
        stderr(&failed).contains(&format!(
            "standard input: the table does not exist (1 of 1 groups failed on it; no record is at fault)\n  create it with ddb schema-load --table {missing}"
        )),
        "{}",
        stderr(&failed)
    );
    // Unreadable input (4).
    let broken = ddb_with_stdin(endpoint, &table, &["replay", "-"], b"{ not json");
    assert_eq!(broken.status.code(), Some(4), "{broken:?}");
    assert!(
        stderr(&broken).contains("standard input is not JSON"),
        "{}",
        stderr(&broken)
    );
    let missing = ddb(endpoint, &table, &["replay", "/nonexistent/event.json"]);
    assert_eq!(missing.status.code(), Some(4), "{missing:?}");
}

#[test]
fn schema_load_reports_and_fixes_a_table_without_stream_or_index() {
    let endpoint = local::endpoint();
    let table = local::unique_table();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(messaging_stream::aws::dynamodb_client(&local::config_for(
        endpoint, &table,
    )));
    let key = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .unwrap()
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    runtime.block_on(async {
        client
            .create_table()
            .table_name(&table)
            .attribute_definitions(attribute("pk"))
            .attribute_definitions(attribute("sk"))
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .billing_mode(BillingMode::PayPerRequest)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::KeysOnly)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    });
    let checked = ddb(endpoint, &table, &["schema-load"]);
    assert!(!checked.status.success());
    let text = stdout(&checked);
    assert!(text.contains("no index message-group-sk-index"), "{text}");
    assert!(text.contains("the stream is KEYS_ONLY"), "{text}");
    assert!(
        stderr(&checked).contains("schema-load --fix"),
        "{}",
        stderr(&checked)
    );

    let fixed = ok(ddb(endpoint, &table, &["schema-load", "--fix", "--json"]));
    let fixed = &json_lines(&fixed)[0];
    assert_eq!(fixed["status"], "fixed");
    assert_eq!(fixed["differences"].as_array().unwrap().len(), 2);
    let again = ok(ddb(endpoint, &table, &["schema-load", "--json"]));
    assert_eq!(json_lines(&again)[0]["status"], "matches");
    // And the fixed table works end to end.
    ok(ddb(endpoint, &table, &["seed"]));

    // A table with other keys cannot be fixed.
    let other = local::unique_table();
    runtime.block_on(async {
        client
            .create_table()
            .table_name(&other)
            .attribute_definitions(attribute("id"))
            .key_schema(key("id", KeyType::Hash))
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap();
    });
    let refused = ddb(endpoint, &other, &["schema-load", "--fix"]);
    assert!(!refused.status.success());
    assert!(
        stdout(&refused).contains("key schema is id (HASH, S)"),
        "{}",
        stdout(&refused)
    );
    assert!(
        stderr(&refused).contains("cannot be fixed in place"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn drop_takes_y_and_watch_refuses_what_lambda_refuses() {
    let (endpoint, table) = new_table();
    ok(ddb(endpoint, &table, &["drop", "-y"]));
    // clap's usage error (status 2), naming the flag, the value and Lambda's range: any other
    // usage error (a misspelt flag, a missing value) would also exit 2.
    for (args, range) in [
        (["watch", "--batching-window", "301"], "0..=300"),
        (["watch", "--timeout", "0"], "1..=900"),
        (["watch", "--timeout", "901"], "1..=900"),
    ] {
        let output = ddb(endpoint, &table, &args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let (flag, value) = (args[1], args[2]);
        let error = stderr(&output);
        assert!(
            error.contains(&format!("invalid value '{value}' for '{flag}"))
                && error.contains(&format!("{value} is not in {range}")),
            "{args:?}: {error}"
        );
    }
}

#[test]
fn the_lambda_refuses_bad_settings_at_start_up_in_words() {
    for (variable, value) in [
        ("AWS_LAMBDA_LOG_FORMAT", "yaml"),
        ("AWS_LAMBDA_LOG_LEVEL", "verbose"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "127.0.0.1:8000"),
        ("GROUP_CONCURRENCY", "0"),
    ] {
        // Outside Lambda (the kit's command has no AWS_LAMBDA_RUNTIME_API): the settings are checked first.
        let output = bin::command(env!("CARGO_BIN_EXE_messaging-stream"))
            .env(variable, value)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{variable}: {output:?}");
        let text = stderr(&output);
        assert!(
            text.starts_with(&format!(
                "messaging-stream: {variable}=\"{value}\" is not valid: "
            )),
            "{variable}: {text}"
        );
        assert!(!text.contains("ConfigError"), "no debug output: {text}");
        assert!(!text.contains('\u{1b}'), "no colour codes: {text}");
    }
}

#[test]
fn the_lambda_outside_lambda_says_so_instead_of_panicking() {
    let runtime = [
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    ];
    for missing in runtime {
        let mut command = bin::command(env!("CARGO_BIN_EXE_messaging-stream"));
        for name in runtime.iter().filter(|name| **name != missing) {
            command.env(
                name,
                if name.ends_with("MEMORY_SIZE") {
                    "128"
                } else {
                    "127.0.0.1:9"
                },
            );
        }
        let output = command
            .env_remove(missing)
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap();
        // 101 would be lambda_runtime's panic.
        assert_eq!(output.status.code(), Some(1), "{missing}: {output:?}");
        let text = stderr(&output);
        assert!(
            text.starts_with(&format!("messaging-stream: {missing} is not set")),
            "{text}"
        );
    }
}

/// Stops the shared DynamoDB Local a test started, by its PID file, whatever the test's outcome.
struct SharedServer {
    pidfile: std::path::PathBuf,
    port: u16,
}

impl SharedServer {
    fn make(&self, target: &str) -> Output {
        Command::new("make")
            .args(["-s", "--no-print-directory", target, "IN_MEMORY=1"])
            .arg(format!("DDB_PORT={}", self.port))
            .arg(format!("DDB_SHARED_PIDFILE={}", self.pidfile.display()))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("run make")
    }
}

impl Drop for SharedServer {
    fn drop(&mut self) {
        let _ = self.make("dynamodb-local-stop");
        // And the one `ddb local` started (its PID file is in the same folder).
        if let Some(dir) = self.pidfile.parent() {
            let _ = Command::new("bash")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/scripts/dynamodb-local.sh"
                ))
                .arg("stop")
                .arg(dir.join("dynamodb-local-shared.pid"))
                .output();
        }
    }
}

#[test]
fn the_shared_dynamodb_local_is_one_database_for_every_key_and_region() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = SharedServer {
        pidfile: dir.path().join("shared.pid"),
        port,
    };
    let stopped = server.make("dynamodb-local-status");
    assert_eq!(
        stopped.status.code(),
        Some(2),
        "make turns the script's 3 into 2: {stopped:?}"
    );
    let started = server.make("dynamodb-local");
    assert!(started.status.success(), "{started:?}");
    assert!(
        stdout(&started).contains("-sharedDb"),
        "{}",
        stdout(&started)
    );
    let again = server.make("dynamodb-local");
    assert!(stdout(&again).contains("already running"), "{again:?}");
    assert!(server.make("dynamodb-local-status").status.success());

    let endpoint = format!("http://127.0.0.1:{port}");
    let table = local::unique_table();
    let as_someone = |key: &str, region: &str, args: &[&str]| {
        ddb_command(&endpoint, &table, args)
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", "any")
            .env("AWS_REGION", region)
            .output()
            .unwrap()
    };
    ok(as_someone("alice", "us-east-1", &["schema-load"]));
    // Another key in another region (as boto3 with key `x` would be) sees the same table.
    let listed = ok(as_someone("x", "eu-west-1", &["list-tables", "--json"]));
    assert!(
        json_lines(&listed)
            .iter()
            .any(|t| t["table"] == table.as_str()),
        "{listed:?}"
    );
    ok(server.make("dynamodb-local-stop"));
    assert!(!server.make("dynamodb-local-status").status.success());

    // `ddb local` does the same.
    let local = |args: &[&str]| {
        bin::command(bin::ddb())
            .arg("local")
            .args(args)
            .env("DDB_SHARED_DIR", dir.path())
            .output()
            .unwrap()
    };
    let port = port.to_string();
    assert_eq!(local(&["status", "--port", &port]).status.code(), Some(3));
    let started = local(&["start", "--in-memory", "--port", &port]);
    assert!(started.status.success(), "{started:?}");
    assert!(stdout(&started).contains("-sharedDb"), "{started:?}");
    ok(local(&["status", "--port", &port]));
    ok(local(&["stop"]));
    assert_eq!(local(&["status", "--port", &port]).status.code(), Some(3));
}

/// Issue 16, item 8: a team's own ids (not uuids) send, as any id the group's rows name; anyone else is
/// refused with the participants; the text comes from stdin (`-`) or a file as well as the command line.
#[test]
fn send_takes_any_participant_id_and_text_from_stdin_or_a_file() {
    let (endpoint, table) = new_table();
    // A team's ids: a custom handle-like id, a ULID, and one named only as the other participant of a
    // row (it has no row of its own in that group).
    let (me, ulid, guest) = (
        "hu-me-cd63da",
        "01HZY3KQ7W9X2M4N6P8R0S1T2V",
        "us-east-1:7d3c1a2b-guest",
    );
    let row = |owner: &str, group: &str, other: &str, name: &str, handle: &str| {
        // Each owner's rows at their own instants (pk and sk are the key).
        let sk = if group == "team-group-1" {
            "2024-01-01T00:00:00+00:00"
        } else {
            "2023-01-01T00:00:00+00:00"
        };
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(format!("GRP#{owner}"))),
            ("sk".to_owned(), AttributeValue::S(sk.into())),
            (
                "message_group_uuid".to_owned(),
                AttributeValue::S(group.into()),
            ),
            ("message".to_owned(), AttributeValue::S("older".into())),
            ("user_uuid".to_owned(), AttributeValue::S(other.into())),
            (
                "user_display_name".to_owned(),
                AttributeValue::S(name.into()),
            ),
            ("user_handle".to_owned(), AttributeValue::S(handle.into())),
        ])
    };
    let group = "team-group-1";
    let guest_group = "team-group-2";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client =
            messaging_stream::aws::dynamodb_client(&local::config_for(endpoint, &table)).await;
        for item in [
            row(me, group, ulid, "Una Lid", "una"),
            row(ulid, group, me, "Hu Me", "hume"),
            row(me, guest_group, guest, "Gus Guest", "gus"),
        ] {
            client
                .put_item()
                .table_name(&table)
                .set_item(Some(item))
                .send()
                .await
                .unwrap();
        }
    });

    // From a non-uuid owner, the text on stdin; its names come from the other participant's row.
    let sent = ok(ddb_with_stdin(
        endpoint,
        &table,
        &["send", "--group", group, "--from", me, "--json", "-"],
        b"from stdin\n",
    ));
    let sent_at = json_lines(&sent)[0]["created_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let newest = &json_lines(&ok(ddb(
        endpoint,
        &table,
        &["messages", group, "--limit", "1", "--json"],
    )))[0];
    assert_eq!(
        (
            &newest["message"],
            &newest["handle"],
            &newest["display_name"]
        ),
        (
            &serde_json::json!("from stdin"),
            &serde_json::json!("hume"),
            &serde_json::json!("Hu Me")
        )
    );
    assert_eq!(newest["created_at"], sent_at.as_str());

    // The rows move: the function, run by watch as Lambda would, brings both to the new message.
    let template = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");
    let dir = tempfile::tempdir().unwrap();
    let failures = dir.path().join("failures.jsonl").display().to_string();
    let watch = [
        "watch",
        "--once",
        "--template",
        template,
        "--failures-file",
        &failures,
    ];
    ok(ddb(endpoint, &table, &watch));
    for (owner, other) in [(me, "una"), (ulid, "hume")] {
        let top = &json_lines(&ok(ddb(
            endpoint,
            &table,
            &["conversations", owner, "--limit", "1", "--json"],
        )))[0];
        assert_eq!(top["uuid"], group, "{owner}");
        assert_eq!(top["created_at"], sent_at.as_str(), "{owner}");
        assert_eq!(top["message"], "from stdin", "{owner}");
        assert_eq!(top["handle"], other, "{owner}");
    }

    // From a ULID, a long text (over the 128 KiB one argument may hold) in a file.
    let long = "x".repeat(200 * 1024);
    let file = dir.path().join("long.txt");
    std::fs::write(&file, format!("{long}\n")).unwrap();
    ok(ddb(
        endpoint,
        &table,
        &[
            "send",
            "--group",
            group,
            "--from",
            ulid,
            "--text-file",
            &file.display().to_string(),
        ],
    ));
    // From one who owns no row of the group but whom its row names.
    ok(ddb(
        endpoint,
        &table,
        &["send", "--group", guest_group, "--from", guest, "hello"],
    ));
    let newest = |group: &str| {
        json_lines(&ok(ddb(
            endpoint,
            &table,
            &["messages", group, "--limit", "1", "--json"],
        )))[0]
            .clone()
    };
    let long_sent = newest(group);
    assert_eq!(
        long_sent["message"].as_str().map(str::len),
        Some(long.len())
    );
    assert_eq!(long_sent["handle"], "una");
    assert_eq!(newest(guest_group)["handle"], "gus");
    // `--text` sends a dash as it is; `-` would have read stdin.
    ok(ddb(
        endpoint,
        &table,
        &[
            "send",
            "--group",
            guest_group,
            "--from",
            guest,
            "--text",
            "-",
        ],
    ));
    assert_eq!(newest(guest_group)["message"], "-");

    // Anyone else is a typo: refused, saying who the participants are; nothing written.
    let count =
        |group: &str| json_lines(&ok(ddb(endpoint, &table, &["messages", group, "--json"]))).len();
    let before = count(group);
    for stranger in ["hu-me-cd63db", &uuid::Uuid::new_v4().to_string(), "londo"] {
        let refused = ddb(
            endpoint,
            &table,
            &["send", "--group", group, "--from", stranger, "typo"],
        );
        assert!(!refused.status.success(), "{stranger}: {refused:?}");
        let said = stderr(&refused);
        assert!(
            said.contains(&format!(
                "{stranger:?} is not a participant of group {group}"
            )) && said.contains(me)
                && said.contains(&format!("{ulid} (@una)")),
            "{said}"
        );
    }
    assert_eq!(count(group), before);
    let no_group = ddb(
        endpoint,
        &table,
        &["send", "--group", "no-such-group", "--from", me, "x"],
    );
    assert!(!no_group.status.success());
    assert!(
        stderr(&no_group).contains("group no-such-group has no rows"),
        "{}",
        stderr(&no_group)
    );
    // One text source only, and one is needed.
    for args in [
        vec!["send", "--group", group, "--from", me],
        vec!["send", "--group", group, "--from", me, "a", "--text", "b"],
        vec![
            "send",
            "--group",
            group,
            "--from",
            me,
            "--text-file",
            "f",
            "-",
        ],
    ] {
        let output = ddb(endpoint, &table, &args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
    }
}
