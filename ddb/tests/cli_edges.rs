//! Issue 16, the edges of `ddb`: `--endpoint aws` is AWS (and writes say where), any text renders
//! in a table, exit codes as documented (1 with the fix for a set-up problem, replay included; 3
//! only when DynamoDB answered and a record failed), and a missing GSI's hint. Through the `ddb`
//! binary, on this binary's DynamoDB Local (a fault proxy in front of it for exit 3).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use testkit::bin::{self, ok, seeded_table, stderr, stdout, Flags as _};
use testkit::fault_proxy::{Fault, FaultPlan, Proxy};
use testkit::{items, local};

const ANDREW_LONDO: &str = "8f1a3c5e-7b9d-4e2f-a6c8-0d4e6f8a1c05";
const NEW_MESSAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/new-message.json");

/// `ddb` with none of the developer's settings (the kit's command), tables 120 columns wide.
fn ddb_command(args: &[&str]) -> Command {
    let mut command = bin::command(env!("CARGO_BIN_EXE_ddb"));
    command.args(args).env("COLUMNS", "120");
    command
}

fn ddb(endpoint: &str, table: &str, args: &[&str]) -> Output {
    ddb_command(&[])
        .endpoint(endpoint)
        .table(table)
        .args(args)
        .output()
        .expect("run ddb")
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn replay_against_a_closed_port_exits_1_with_the_hint_within_seconds() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let started = Instant::now();
    let output = ddb(&endpoint, "cruddur-messages", &["replay", NEW_MESSAGE]);
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let text = stderr(&output);
    assert!(
        text.contains(&format!("{NEW_MESSAGE}: DynamoDB could not be reached (1 of 1 groups failed on it; no record is at fault)")),
        "{text}"
    );
    assert!(
        text.contains("\n  is DynamoDB Local running? make dynamodb-local"),
        "{text}"
    );
    // The handler's response is still printed, as Lambda would have received it.
    assert!(stdout(&output).contains("batchItemFailures"), "{output:?}");
    // 5 attempts from a 100 ms back-off: at most 1.5 s of back-off (with the SDK's 1 s base, 4-9 s
    // here, 2026-12-07, and 11 s in the issue).
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn replay_exits_3_only_when_dynamodb_answered_and_a_record_failed() {
    let (endpoint, table) = seeded_table();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let target = local::address();
    // DynamoDB (through the proxy) answers every transaction with a 500, through every retry.
    let proxy = runtime
        .block_on(Proxy::start(
            target,
            FaultPlan::none()
                .probability(Fault::InternalError, 1.0)
                .only(&["TransactWriteItems"]),
        ))
        .unwrap();
    let failed = ddb(&proxy.endpoint_url(), &table, &["replay", NEW_MESSAGE]);
    assert_eq!(failed.status.code(), Some(3), "{failed:?}");
    let response: serde_json::Value = serde_json::from_str(stdout(&failed).trim()).unwrap();
    assert_eq!(
        response["batchItemFailures"][0]["itemIdentifier"],
        "4700000000000000000001"
    );
    assert!(
        stderr(&failed).contains("a response named a failed record"),
        "{}",
        stderr(&failed)
    );
    assert!(proxy.counts().total_faults() > 0);
    // The same event straight to DynamoDB Local goes through.
    let passed = ok(ddb(endpoint, &table, &["replay", NEW_MESSAGE]));
    assert_eq!(stdout(&passed).trim(), r#"{"batchItemFailures":[]}"#);
}

#[test]
fn a_missing_table_or_index_is_exit_1_with_its_fix_for_replay_and_send() {
    let endpoint = local::endpoint();
    let missing = local::unique_table();
    let output = ddb(endpoint, &missing, &["replay", NEW_MESSAGE]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        stderr(&output).contains(&format!(
            "the table does not exist (1 of 1 groups failed on it; no record is at fault)\n  create it with ddb schema-load --table {missing}"
        )),
        "{}",
        stderr(&output)
    );

    // A table without the group index, holding a conversation of two made-up users.
    let table = local::unique_table();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(messaging_stream::aws::dynamodb_client(&local::config_for(
        endpoint, &table,
    )));
    let group = uuid::Uuid::new_v4().to_string();
    let (ann, bob) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let (group, ann, bob) = (group.as_str(), ann.as_str(), bob.as_str());
    let mut ann_row = items::group_row(ann, group, "2026-01-01T00:00:00+00:00", "hi");
    let mut bob_row = items::group_row(bob, group, "2026-01-01T00:00:00+00:00", "hi");
    for (row, other, name) in [(&mut ann_row, bob, "Bob"), (&mut bob_row, ann, "Ann")] {
        row.insert("user_uuid".into(), items::attr(other));
        row.insert("user_display_name".into(), items::attr(name));
        row.insert("user_handle".into(), items::attr(&name.to_lowercase()));
    }
    runtime.block_on(async {
        let string = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap()
        };
        let key = |name: &str, key_type| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .unwrap()
        };
        client
            .create_table()
            .table_name(&table)
            .attribute_definitions(string("pk"))
            .attribute_definitions(string("sk"))
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap();
        for row in [ann_row, bob_row] {
            client
                .put_item()
                .table_name(&table)
                .set_item(Some(row))
                .send()
                .await
                .unwrap();
        }
    });
    let fix = format!("add it with ddb schema-load --fix --table {table}");
    let sent = ddb(
        endpoint,
        &table,
        &["send", "--group", group, "--from", ann, "hi Bob"],
    );
    assert_eq!(sent.status.code(), Some(1), "{sent:?}");
    assert!(stderr(&sent).contains("ValidationException"), "{sent:?}");
    assert!(stderr(&sent).contains(&fix), "{}", stderr(&sent));
    let scanned = ddb(
        endpoint,
        &table,
        &["scan", "--index", "message-group-sk-index"],
    );
    assert_eq!(scanned.status.code(), Some(1), "{scanned:?}");
    assert!(stderr(&scanned).contains(&fix), "{}", stderr(&scanned));
    let replayed = ddb(endpoint, &table, &["replay", NEW_MESSAGE]);
    assert_eq!(replayed.status.code(), Some(1), "{replayed:?}");
    assert!(
        stderr(&replayed).contains("the table has no group index"),
        "{}",
        stderr(&replayed)
    );
    assert!(stderr(&replayed).contains(&fix), "{}", stderr(&replayed));
}

#[test]
fn a_300_kb_message_with_controls_and_bidi_overrides_renders_one_line_per_row() {
    let (endpoint, table) = seeded_table();
    let text = format!(
        "first line\nsecond\t\u{202e}desrever\u{2066}\u{1b}[31m red {}\u{1f600}",
        "x".repeat(300_000)
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(messaging_stream::aws::dynamodb_client(&local::config_for(
        endpoint, &table,
    )));
    let at = "2031-01-01T00:00:00+00:00";
    let owner = "6c4a0b3f-9d2e-4f81-b7a6-1e5d8c9f3e03"; // londo, a member of ANDREW_LONDO
    runtime.block_on(async {
        for item in [
            items::message_item(ANDREW_LONDO, at, &text),
            items::group_row(owner, "group-of-a-long-text", at, &text),
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
    for args in [
        vec!["conversations", owner],
        vec!["messages", ANDREW_LONDO, "--limit", "3"],
        vec!["scan"],
    ] {
        let rows = stdout(&ok(ddb(
            endpoint,
            &table,
            &[&args[..], &["--json"]].concat(),
        )))
        .lines()
        .count();
        assert!(rows >= 2, "{args:?}: {rows} rows");
        let output = ok(ddb(endpoint, &table, &args));
        let printed = stdout(&output);
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(lines.len(), 1 + rows, "{args:?}: header and one line a row");
        assert!(
            lines.iter().all(|l| l.chars().count() <= 120),
            "{args:?}: cut to COLUMNS"
        );
        let long = lines
            .iter()
            .find(|l| l.contains("first line"))
            .unwrap_or_else(|| panic!("{args:?}: the long text's row"));
        assert!(
            long.contains("first line\\nsecond") && long.ends_with('\u{2026}'),
            "{args:?}: {long}"
        );
        if args[0] == "messages" {
            // The app's five fields: the message's cell is still wide enough to show the escapes.
            assert!(
                long.contains("first line\\nsecond\\t\\u{202e}desrever\\u{2066}"),
                "{long}"
            );
        }
        assert!(
            !printed.contains(['\u{202e}', '\u{2066}', '\u{1b}', '\t', '\r']),
            "{args:?}: a control or bidi character printed raw"
        );
    }
    // --json prints everything, uncut.
    let json = ok(ddb(
        endpoint,
        &table,
        &["messages", ANDREW_LONDO, "--limit", "1", "--json"],
    ));
    let first: serde_json::Value = serde_json::from_str(stdout(&json).trim()).unwrap();
    assert_eq!(first["message"], text.as_str());
}

#[test]
fn endpoint_aws_writes_to_aws_whatever_the_environment_and_profile_say() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config");
    let credentials = home.path().join("credentials");
    std::fs::write(
        &config,
        "[default]\nendpoint_url = http://127.0.0.1:9101\nservices = local\n\n\
         [services local]\ndynamodb =\n  endpoint_url = http://127.0.0.1:9102\n",
    )
    .unwrap();
    std::fs::write(&credentials, "").unwrap();
    let local = format!("http://127.0.0.1:{}", closed_port());
    let run = |args: &[&str]| {
        let mut command = ddb_command(args);
        command
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9103")
            .env("AWS_ENDPOINT_URL_DYNAMODB", &local)
            .env("AWS_CONFIG_FILE", &config)
            .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
            // No credentials anywhere (the kit's command has no other AWS_* variable: no key,
            // profile, region, web identity or container credentials) and no instance metadata:
            // nothing can be sent to AWS.
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("HOME", home.path());
        command.output().expect("run ddb")
    };

    let aws = run(&[
        "--endpoint",
        "aws",
        "--region",
        "us-east-1",
        "--table",
        "prod",
        "drop",
        "--yes",
    ]);
    assert_eq!(aws.status.code(), Some(1), "{aws:?}");
    let text = stderr(&aws);
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("ddb: writing to"))
            .collect::<Vec<_>>(),
        ["ddb: writing to table prod at https://dynamodb.us-east-1.amazonaws.com (region us-east-1)"],
        "{text}"
    );
    assert!(!text.contains("127.0.0.1"), "{text}");
    assert!(text.contains("no credentials or no region"), "{text}");

    // The environment's endpoint without the flag; an explicit --endpoint-url over both.
    let configured = run(&["--table", "dev", "drop", "--yes"]);
    assert!(
        stderr(&configured).contains(&format!(
            "ddb: writing to table dev at {local} (region us-east-1)"
        )),
        "{configured:?}"
    );
    let other = format!("http://127.0.0.1:{}", closed_port());
    let explicit = run(&["--endpoint-url", &other, "--table", "dev", "drop", "--yes"]);
    assert_eq!(explicit.status.code(), Some(1), "{explicit:?}");
    assert!(
        stderr(&explicit).contains(&format!("ddb: writing to table dev at {other} ")),
        "{explicit:?}"
    );
    assert!(
        stderr(&explicit).contains("is DynamoDB Local running?"),
        "{explicit:?}"
    );

    // Reads say nothing; --endpoint aws without any region is refused before anything is sent.
    let no_region = run(&["--endpoint", "aws", "scan"]);
    assert_eq!(no_region.status.code(), Some(1), "{no_region:?}");
    assert_eq!(
        stderr(&no_region).trim(),
        "ddb: --endpoint aws needs a region: --region, AWS_REGION or the profile's region"
    );
}
