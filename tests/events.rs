//! Each file of events/ replayed on a seeded table does exactly what events/README.md says.

use ddb::commands::{replay, seed};
use local::TestTable;
use messaging_stream::event::{parse_event, parse_raw_event, RawEvent};
use std::path::Path;
use testkit::{items, local};

async fn seeded() -> TestTable {
    let table = TestTable::new().await;
    seed::seed(&table.client, table.table())
        .await
        .expect("seed");
    table
}

fn read_event(file: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(file);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A seeded table as it is when `file`'s records arrive: the messages its REMOVEs name are
/// already deleted from the table (the stream reports a delete after it happened).
async fn seeded_for(file: &str) -> TestTable {
    let table = seeded().await;
    for record in read_event(file)["Records"].as_array().unwrap() {
        if record["eventName"] == "REMOVE" {
            let keys = &record["dynamodb"]["Keys"];
            table
                .client
                .delete_item()
                .table_name(table.table())
                .key("pk", items::attr(keys["pk"]["S"].as_str().unwrap()))
                .key("sk", items::attr(keys["sk"]["S"].as_str().unwrap()))
                .send()
                .await
                .expect("delete the removed message");
        }
    }
    table
}

/// The Andrew-Bayko conversation's messages in the seed, oldest first.
fn andrew_bayko_messages() -> Vec<seed::SeedMessage> {
    let conversation = seed::conversations()
        .into_iter()
        .find(|c| c.group_uuid == seed::GROUP_ANDREW_BAYKO)
        .unwrap();
    seed::messages(&conversation)
}

const ALL_FILES: [&str; 4] = [
    "new-message.json",
    "batch-mixed.json",
    "edit-message.json",
    "delete-message.json",
];

fn members(group: &str) -> usize {
    seed::conversations()
        .into_iter()
        .find(|c| c.group_uuid == group)
        .unwrap()
        .members
        .len()
}

async fn replay(
    table: &TestTable,
    file: &str,
) -> aws_lambda_events::streams::DynamoDbEventResponse {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(file);
    replay::replay_file(&table.app, &path)
        .await
        .expect("the handler answers")
}

#[tokio::test]
async fn new_message_moves_the_andrew_londo_rows_only() {
    let table = seeded().await;
    let untouched_before = (
        table.row_summaries(seed::GROUP_ANDREW_BAYKO).await,
        table.row_summaries(seed::GROUP_CREW).await,
    );

    let response = replay(&table, "new-message.json").await;

    assert!(response.batch_item_failures.is_empty());
    let moved = table.row_summaries(seed::GROUP_ANDREW_LONDO).await;
    assert_eq!(moved.len(), 2);
    for (_, sk, text) in &moved {
        assert_eq!(sk, "2025-01-15T10:00:00.123456+00:00");
        assert_eq!(text, "Londo here: are we still on for Friday?");
    }
    assert_eq!(
        (
            table.row_summaries(seed::GROUP_ANDREW_BAYKO).await,
            table.row_summaries(seed::GROUP_CREW).await
        ),
        untouched_before
    );
}

#[tokio::test]
async fn batch_mixed_moves_two_groups_and_skips_the_rest() {
    let table = seeded_for("batch-mixed.json").await;
    let londo_before = table.row_summaries(seed::GROUP_ANDREW_LONDO).await;
    let payload = read_event("batch-mixed.json");

    let (response, summary) =
        messaging_stream::handle(&table.app, parse_event(&payload).unwrap(), None)
            .await
            .unwrap();

    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        (
            summary.counts.records,
            summary.counts.relevant,
            summary.counts.ignored,
            summary.counts.malformed
        ),
        (8, 6, 1, 1)
    );
    let crew = table.row_summaries(seed::GROUP_CREW).await;
    assert_eq!(crew.len(), members(seed::GROUP_CREW));
    assert!(crew
        .iter()
        .all(|(_, sk, text)| sk == "2025-01-15T12:00:00+00:00"
            && text == "Crew: standup moved to noon"));
    let bayko = table.row_summaries(seed::GROUP_ANDREW_BAYKO).await;
    assert_eq!(bayko.len(), 2);
    assert!(bayko.iter().all(
        |(_, sk, text)| sk == "2025-01-15T11:00:00.5" && text == "Bayko: newest in this batch"
    ));
    assert_eq!(
        table.row_summaries(seed::GROUP_ANDREW_LONDO).await,
        londo_before
    );
}

/// Every item of the table, in key order, every attribute: what a replay must leave unchanged.
async fn whole_table(table: &TestTable) -> Vec<messaging_stream::plan::Item> {
    let mut items = table.all_items().await;
    items.sort_by_key(|item| (items::s(item, "pk"), items::s(item, "sk")));
    items
}

#[tokio::test]
async fn every_event_file_replays_twice_to_the_same_table() {
    for file in ALL_FILES {
        let table = seeded_for(file).await;
        let before = whole_table(&table).await;
        replay(&table, file).await;
        let once = whole_table(&table).await;
        assert_ne!(once, before, "{file} changes a seeded table");
        let response = replay(&table, file).await;
        assert!(response.batch_item_failures.is_empty(), "{file}");
        // Every group's rows (LONDO's, which new-message.json moves, included) and every other
        // item, attribute for attribute.
        assert_eq!(whole_table(&table).await, once, "{file}");
    }
}

#[tokio::test]
async fn edit_message_rewrites_the_andrew_bayko_rows_in_place() {
    let table = seeded_for("edit-message.json").await;
    let others_before = (
        table.row_summaries(seed::GROUP_ANDREW_LONDO).await,
        table.row_summaries(seed::GROUP_CREW).await,
    );
    let last = andrew_bayko_messages().pop().unwrap();
    let edited = read_event("edit-message.json")["Records"][0]["dynamodb"]["NewImage"]["message"]
        ["S"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(edited, last.text);

    assert!(replay(&table, "edit-message.json")
        .await
        .batch_item_failures
        .is_empty());

    let rows = table.row_summaries(seed::GROUP_ANDREW_BAYKO).await;
    assert_eq!(rows.len(), 2);
    for (_, sk, text) in &rows {
        assert_eq!(
            (sk, text),
            (&last.created_at, &edited),
            "same key, new text"
        );
    }
    assert_eq!(
        (
            table.row_summaries(seed::GROUP_ANDREW_LONDO).await,
            table.row_summaries(seed::GROUP_CREW).await
        ),
        others_before
    );
}

#[tokio::test]
async fn delete_message_falls_back_to_the_previous_message() {
    let mut messages = andrew_bayko_messages();
    let removed = messages.pop().unwrap();
    let previous = messages.pop().unwrap();

    // As it happens: the message is gone from the table when its REMOVE arrives.
    let table = seeded_for("delete-message.json").await;
    assert!(replay(&table, "delete-message.json")
        .await
        .batch_item_failures
        .is_empty());
    let rows = table.row_summaries(seed::GROUP_ANDREW_BAYKO).await;
    assert_eq!(rows.len(), 2);
    for (_, sk, text) in &rows {
        assert_eq!((sk, text), (&previous.created_at, &previous.text));
    }

    // Replayed on a table that still holds the message, the table wins: nothing changes.
    let table = seeded().await;
    let before = table.row_summaries(seed::GROUP_ANDREW_BAYKO).await;
    assert!(replay(&table, "delete-message.json")
        .await
        .batch_item_failures
        .is_empty());
    assert_eq!(table.row_summaries(seed::GROUP_ANDREW_BAYKO).await, before);
    assert!(before.iter().all(|(_, sk, _)| *sk == removed.created_at));
}

/// The Lambda binary's adapter (records kept as raw JSON text) does exactly what the JSON
/// adapter does, through the handler.
#[tokio::test]
async fn the_binary_entry_point_matches_the_handler_on_every_file() {
    for file in ALL_FILES {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("events")
                .join(file),
        )
        .unwrap();
        let (tree, raw) = (seeded_for(file).await, seeded_for(file).await);
        let records = parse_event(&serde_json::from_str(&text).unwrap()).unwrap();
        let (by_tree, _) = messaging_stream::handle(&tree.app, records, None)
            .await
            .unwrap();
        let raw_event: RawEvent = serde_json::from_str(&text).unwrap();
        let records = parse_raw_event(&raw_event).unwrap();
        let (by_raw, _) = messaging_stream::handle(&raw.app, records, None)
            .await
            .unwrap();
        assert_eq!(by_tree, by_raw, "{file}");
        for group in [
            seed::GROUP_ANDREW_BAYKO,
            seed::GROUP_ANDREW_LONDO,
            seed::GROUP_CREW,
        ] {
            assert_eq!(
                tree.row_summaries(group).await,
                raw.row_summaries(group).await,
                "{file}: group {group}"
            );
        }
        let fresh = seeded().await;
        let mut changed = 0;
        for group in [
            seed::GROUP_ANDREW_BAYKO,
            seed::GROUP_ANDREW_LONDO,
            seed::GROUP_CREW,
        ] {
            changed +=
                usize::from(raw.row_summaries(group).await != fresh.row_summaries(group).await);
        }
        assert!(changed > 0, "{file} moved nothing through the raw adapter");
    }
}
