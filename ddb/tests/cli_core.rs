//! The `ddb` binary against DynamoDB Local: every subcommand, as a developer runs it.

use testkit::bin::{json_lines, run_ddb as ddb, seeded_table, stderr, stdout};
use testkit::local;

#[test]
fn schema_load_is_idempotent_and_replay_prints_one_response_per_file() {
    let endpoint = local::endpoint();
    let table = local::unique_table();
    let first = ddb(endpoint, &table, &["schema-load"]);
    assert!(first.status.success(), "{first:?}");
    assert!(stdout(&first).contains("created"), "{first:?}");
    let second = ddb(endpoint, &table, &["schema-load"]);
    assert!(second.status.success(), "{second:?}");
    assert!(
        stdout(&second).contains("already there, as the function needs it"),
        "{second:?}"
    );
    assert!(ddb(endpoint, &table, &["seed"]).status.success());

    let events = concat!(env!("CARGO_MANIFEST_DIR"), "/../events");
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
    let endpoint = local::endpoint();
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

const ANDREW_LONDO: &str = "8f1a3c5e-7b9d-4e2f-a6c8-0d4e6f8a1c05";

#[test]
fn list_tables_scan_and_drop_only_with_yes() {
    let (endpoint, table) = seeded_table();
    let listed = |json: bool| -> Vec<String> {
        let mut args = vec!["list-tables"];
        if json {
            args.push("--json");
        }
        let output = ddb(endpoint, &table, &args);
        assert!(output.status.success(), "{output:?}");
        if json {
            json_lines(&output)
                .iter()
                .map(|v| v["table"].as_str().unwrap().to_owned())
                .collect()
        } else {
            stdout(&output).lines().map(str::to_owned).collect()
        }
    };
    assert!(listed(true).contains(&table));
    assert!(listed(false).contains(&table));

    let scan = |args: &[&str]| {
        json_lines(&ddb(
            endpoint,
            &table,
            &[&["scan", "--json"], args].concat(),
        ))
    };
    let everything = scan(&[]);
    assert_eq!(
        everything.len(),
        90 + 8,
        "the seed's messages and group rows"
    );
    let index = scan(&["--index", "message-group-sk-index"]);
    assert_eq!(index.len(), 8, "only group rows carry message_group_uuid");
    assert!(index
        .iter()
        .all(|row| row["pk"].as_str().unwrap().starts_with("GRP#")));
    assert_eq!(scan(&["--limit", "5"]).len(), 5);
    let human = stdout(&ddb(endpoint, &table, &["scan", "--limit", "3"]));
    assert!(human.starts_with("pk "), "{human}");
    assert_eq!(human.lines().count(), 1 + 3);

    let refused = ddb(endpoint, &table, &["drop"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--yes"), "{}", stderr(&refused));
    assert!(listed(true).contains(&table), "dropped without --yes");
    let dropped = ddb(endpoint, &table, &["drop", "--yes"]);
    assert!(dropped.status.success(), "{dropped:?}");
    assert!(!listed(true).contains(&table));
}

#[test]
fn send_and_new_conversation_write_what_the_app_reads() {
    let (endpoint, table) = seeded_table();

    let sent = ddb(
        endpoint,
        &table,
        &[
            "send",
            "--group",
            ANDREW_LONDO,
            "--from",
            "londo",
            "--json",
            "Friday?",
        ],
    );
    assert!(sent.status.success(), "{sent:?}");
    let sent = &json_lines(&sent)[0];
    let created_at = sent["created_at"].as_str().unwrap();
    assert!(created_at.ends_with("+00:00"), "{created_at}");
    let newest = &json_lines(&ddb(
        endpoint,
        &table,
        &["messages", ANDREW_LONDO, "--limit", "1", "--json"],
    ))[0];
    // The app's entry: uuid is the message's, created_at its sort key, handle the sender's.
    assert_eq!(newest["uuid"], sent["message_uuid"]);
    assert_eq!(newest["created_at"], created_at);
    assert_eq!(newest["message"], "Friday?");
    assert_eq!(newest["handle"], "londo");

    let started = ddb(
        endpoint,
        &table,
        &[
            "new-conversation",
            "--from",
            "vlad",
            "--to",
            "bayko",
            "--json",
            "hi",
        ],
    );
    assert!(started.status.success(), "{started:?}");
    let started = &json_lines(&started)[0];
    let group = started["message_group_uuid"].as_str().unwrap();
    for (owner, other) in [("vlad", "bayko"), ("bayko", "vlad")] {
        let top = &json_lines(&ddb(
            endpoint,
            &table,
            &["conversations", owner, "--limit", "1", "--json"],
        ))[0];
        assert_eq!(top["uuid"], group);
        assert_eq!(top["created_at"], started["created_at"]);
        assert_eq!(top["handle"], other);
        assert_eq!(top["message"], "hi");
    }
    let messages = json_lines(&ddb(endpoint, &table, &["messages", group, "--json"]));
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["handle"], "vlad");

    for (args, expected) in [
        (
            vec!["send", "--group", ANDREW_LONDO, "--from", "vlad", "x"],
            "\"vlad\" is not a participant of group",
        ),
        (
            vec!["send", "--group", ANDREW_LONDO, "--from", "nobody", "x"],
            "\"nobody\" is not a participant of group",
        ),
        (
            vec!["new-conversation", "--from", "vlad", "--to", "vlad", "x"],
            "two different users",
        ),
    ] {
        let output = ddb(endpoint, &table, &args);
        assert!(!output.status.success(), "{args:?}");
        assert!(
            stderr(&output).contains(expected),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    // Nothing was written by the refused commands.
    let all = json_lines(&ddb(endpoint, &table, &["scan", "--json"]));
    assert_eq!(all.len(), 98 + 1 + 3);
}

#[test]
fn watch_once_moves_the_rows_through_the_stream() {
    let (endpoint, table) = seeded_table();
    let dir = tempfile::tempdir().unwrap();
    let failures = dir.path().join("failures.jsonl");
    let template = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let watch_once = |json: bool| {
        let failures = failures.display().to_string();
        let mut args = vec![
            "watch",
            "--once",
            "--template",
            template,
            "--failures-file",
            &failures,
        ];
        if json {
            args.push("--json");
        }
        ddb(endpoint, &table, &args)
    };
    // The seed's 90 messages go through the function (all current); its 8 rows are filtered out.
    let first = watch_once(true);
    assert!(first.status.success(), "{first:?}");
    let stats = &json_lines(&first)[0];
    assert_eq!(stats["records_read"], 98);
    assert_eq!(stats["records_filtered_out"], 8);
    assert_eq!(stats["failed_invocations"], 0);

    let sent = ddb(
        endpoint,
        &table,
        &[
            "send",
            "--group",
            ANDREW_LONDO,
            "--from",
            "londo",
            "--json",
            "on top?",
        ],
    );
    let created_at = json_lines(&sent)[0]["created_at"].clone();
    let second = watch_once(false);
    assert!(second.status.success(), "{second:?}");
    assert!(
        stdout(&second).starts_with("drained: read "),
        "{}",
        stdout(&second)
    );
    assert!(stderr(&second).contains("filter: MessagingStreamFunction"));
    let top = &json_lines(&ddb(
        endpoint,
        &table,
        &["conversations", "andrewbrown", "--limit", "1", "--json"],
    ))[0];
    assert_eq!(top["uuid"], ANDREW_LONDO);
    assert_eq!(top["created_at"], created_at);
    assert!(!failures.exists());

    let no_template = ddb(
        endpoint,
        &table,
        &["watch", "--once", "--template", "/nonexistent.yaml"],
    );
    assert!(!no_template.status.success());
    assert!(
        stderr(&no_template).contains("--no-filter"),
        "{}",
        stderr(&no_template)
    );
}
