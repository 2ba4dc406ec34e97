//! Each file of events/ replayed on a seeded table does exactly what events/README.md says.

mod common;

use common::TestTable;
use messaging_stream::local::{replay, seed};
use std::path::Path;

async fn seeded() -> TestTable {
    let table = TestTable::new().await;
    seed::seed(&table.client, table.table())
        .await
        .expect("seed");
    table
}

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
    let table = seeded().await;
    let londo_before = table.row_summaries(seed::GROUP_ANDREW_LONDO).await;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("events/batch-mixed.json");
    let payload: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();

    let (response, summary) = messaging_stream::handler::process(&table.app, &payload)
        .await
        .unwrap();

    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        (
            summary.records,
            summary.relevant,
            summary.ignored,
            summary.malformed
        ),
        (8, 5, 2, 1)
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

#[tokio::test]
async fn every_event_file_replays_twice_to_the_same_table() {
    for file in ["new-message.json", "batch-mixed.json"] {
        let table = seeded().await;
        replay(&table, file).await;
        let once = table.all_items().await.len();
        let first = table.row_summaries(seed::GROUP_CREW).await;
        let response = replay(&table, file).await;
        assert!(response.batch_item_failures.is_empty(), "{file}");
        assert_eq!(table.all_items().await.len(), once, "{file}");
        assert_eq!(table.row_summaries(seed::GROUP_CREW).await, first, "{file}");
    }
}

/// The Lambda binary's entry point (records kept as raw JSON text) does exactly what `handle` does.
#[tokio::test]
async fn the_binary_entry_point_matches_the_handler_on_every_file() {
    for file in ["new-message.json", "batch-mixed.json"] {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("events")
                .join(file),
        )
        .unwrap();
        let (tree, raw) = (seeded().await, seeded().await);
        let context = lambda_runtime::Context::default;
        let by_tree = messaging_stream::handle(
            &tree.app,
            lambda_runtime::LambdaEvent::new(serde_json::from_str(&text).unwrap(), context()),
        )
        .await
        .unwrap();
        let by_raw = messaging_stream::handler::handle_raw(
            &raw.app,
            lambda_runtime::LambdaEvent::new(serde_json::from_str(&text).unwrap(), context()),
        )
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
        assert!(changed > 0, "{file} moved nothing through handle_raw");
    }
}
