//! The `ddb` binary's core subcommands (schema-load, replay) against DynamoDB Local.

mod common;

use std::process::{Command, Output};

fn ddb(endpoint: &str, table: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ddb"))
        .args(["--endpoint", endpoint, "--table", table])
        .args(args)
        .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
        .env_remove("TABLE_NAME")
        .output()
        .expect("run ddb")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn schema_load_is_idempotent_and_replay_prints_one_response_per_file() {
    let endpoint = common::endpoint();
    let table = common::unique_table();
    let first = ddb(endpoint, &table, &["schema-load"]);
    assert!(first.status.success(), "{first:?}");
    assert!(stdout(&first).contains("New"));
    let second = ddb(endpoint, &table, &["schema-load"]);
    assert!(second.status.success(), "{second:?}");
    assert!(stdout(&second).contains("AlreadyThere"));
    assert!(ddb(endpoint, &table, &["seed"]).status.success());

    let events = concat!(env!("CARGO_MANIFEST_DIR"), "/events");
    let replayed = ddb(
        endpoint,
        &table,
        &[
            "replay",
            &format!("{events}/new-message.json"),
            &format!("{events}/batch-mixed.json"),
        ],
    );

    assert!(replayed.status.success(), "{replayed:?}");
    let lines: Vec<serde_json::Value> = stdout(&replayed)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, vec![serde_json::json!({"batchItemFailures": []}); 2]);
}

#[test]
fn replay_of_unreadable_input_fails_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let not_json = dir.path().join("broken.json");
    std::fs::write(&not_json, "{ not json").unwrap();
    let endpoint = common::endpoint();
    for (file, expected) in [
        (not_json.display().to_string(), "is not JSON"),
        (
            dir.path().join("missing.json").display().to_string(),
            "cannot read",
        ),
    ] {
        let output = ddb(endpoint, "t", &["replay", &file]);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(expected) && stderr.contains(&file),
            "{stderr}"
        );
    }
}
