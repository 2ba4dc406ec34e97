//! What a chat app does every day, on DynamoDB Local: messages edited and deleted, two
//! conversations of one user at the same instant, long messages in big groups. Each test states one
//! rule of the function's job (README, "What the function does with a batch").

use testkit::items;
use testkit::items::{
    edit_record, event, group_row, message_item, message_record, remove_record, s,
};

use messaging_stream::event::parse_event;
use messaging_stream::model::{MESSAGE_SK_ATTR, TRUNCATED_ATTR};
use messaging_stream::size::{item_size, MAX_ITEM_BYTES};
use messaging_stream::timestamp;
use testkit::local::TestTable;

const T0: &str = "2025-01-15T09:00:00.000001+00:00";
const T1: &str = "2025-01-15T10:00:00.123456+00:00";
const T2: &str = "2025-01-15T11:00:00.5";
const T3: &str = "2025-01-15T12:00:00+00:00";

fn no_failures(response: &aws_lambda_events::streams::DynamoDbEventResponse) {
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );
}

/// A group "g" of owners a and b whose rows preview `sk` with `text`, and the message items `messages`.
async fn conversation(rows_at: &str, text: &str, messages: &[(&str, &str)]) -> TestTable {
    let table = TestTable::new().await;
    table
        .put([
            group_row("a", "g", rows_at, text),
            group_row("b", "g", rows_at, text),
        ])
        .await;
    table
        .put(
            messages
                .iter()
                .map(|(sk, text)| message_item("g", sk, text)),
        )
        .await;
    table
}

fn both(sk: &str, text: &str) -> Vec<(String, String, String)> {
    ["GRP#a", "GRP#b"]
        .iter()
        .map(|pk| (pk.to_string(), sk.to_owned(), text.to_owned()))
        .collect()
}

#[tokio::test]
async fn an_edit_of_the_newest_message_rewrites_the_text_in_place_keeping_every_attribute() {
    let table = conversation(T1, "see you at 5", &[(T1, "see you at 6")]).await;
    let before = table.group_rows("g").await;

    let response = table
        .invoke(event(vec![edit_record("g", T1, "see you at 6", "10")]))
        .await
        .unwrap();

    no_failures(&response);
    assert_eq!(table.row_summaries("g").await, both(T1, "see you at 6"));
    for (pk, rows) in table.group_rows("g").await {
        let mut expected = before[&pk][0].clone();
        expected.insert("message".into(), items::attr("see you at 6"));
        assert_eq!(rows[0], expected, "{pk}: only the text changed");
    }
    assert_eq!(table.requests.counts().get("TransactWriteItems"), Some(&1));

    // The same edit again (a replay) writes nothing.
    table.requests.reset();
    no_failures(
        &table
            .invoke(event(vec![edit_record("g", T1, "see you at 6", "10")]))
            .await
            .unwrap(),
    );
    assert_eq!(table.requests.counts().get("TransactWriteItems"), None);
}

#[tokio::test]
async fn an_edit_of_an_older_message_changes_nothing() {
    let table = conversation(T2, "newest", &[(T1, "older, edited"), (T2, "newest")]).await;

    let response = table
        .invoke(event(vec![edit_record("g", T1, "older, edited", "10")]))
        .await
        .unwrap();

    no_failures(&response);
    assert_eq!(table.row_summaries("g").await, both(T2, "newest"));
    assert_eq!(table.requests.counts().get("TransactWriteItems"), None);
}

#[tokio::test]
async fn within_a_batch_the_later_record_of_one_message_wins() {
    let table = conversation(T0, "old", &[(T1, "final")]).await;

    let response = table
        .invoke(event(vec![
            message_record("g", T1, "first draft", "10"),
            edit_record("g", T1, "second draft", "11"),
            edit_record("g", T1, "final", "12"),
        ]))
        .await
        .unwrap();

    no_failures(&response);
    assert_eq!(table.row_summaries("g").await, both(T1, "final"));
}

#[tokio::test]
async fn a_delete_of_the_newest_falls_back_to_the_newest_remaining_message() {
    // The table as it is after the REMOVE: T2's message is gone, T0 and T1 remain.
    let table = conversation(T2, "regret this", &[(T0, "first"), (T1, "second")]).await;

    let (response, summary) = messaging_stream::handle(
        &table.app,
        parse_event(&event(vec![remove_record("g", T2, "10")])).unwrap(),
        None,
    )
    .await
    .unwrap();

    no_failures(&response);
    assert_eq!(table.row_summaries("g").await, both(T1, "second"));
    assert_eq!(
        (summary.counts.rows_fallen_back, summary.counts.rows_moved),
        (2, 0)
    );
    let all = table.all_items().await;
    assert!(
        all.iter().all(|item| s(item, "message") != "regret this"),
        "the removed text survives nowhere"
    );
}

#[tokio::test]
async fn a_delete_of_an_older_message_changes_nothing() {
    let table = conversation(T2, "newest", &[(T2, "newest")]).await;

    let response = table
        .invoke(event(vec![remove_record("g", T1, "10")]))
        .await
        .unwrap();

    no_failures(&response);
    assert_eq!(table.row_summaries("g").await, both(T2, "newest"));
    let counts = table.requests.counts();
    assert_eq!(counts.get("TransactWriteItems"), None);
    assert_eq!(
        counts.get("Query"),
        Some(&1),
        "the GSI only, no fallback read: {counts:?}"
    );
}

#[tokio::test]
async fn a_delete_of_the_only_message_keeps_the_key_and_empties_the_text() {
    let table = conversation(T1, "the only one", &[]).await;

    let response = table
        .invoke(event(vec![remove_record("g", T1, "10")]))
        .await
        .unwrap();

    no_failures(&response);
    assert_eq!(table.row_summaries("g").await, both(T1, ""));
}

#[tokio::test]
async fn a_replayed_remove_changes_nothing() {
    let table = conversation(T2, "deleted", &[(T1, "kept")]).await;
    let remove = event(vec![remove_record("g", T2, "10")]);
    no_failures(&table.invoke(remove.clone()).await.unwrap());
    assert_eq!(table.row_summaries("g").await, both(T1, "kept"));

    table.requests.reset();
    no_failures(&table.invoke(remove).await.unwrap());

    assert_eq!(table.row_summaries("g").await, both(T1, "kept"));
    let counts = table.requests.counts();
    assert_eq!(counts.get("TransactWriteItems"), None, "{counts:?}");
    assert_eq!(
        counts.get("Query"),
        Some(&1),
        "no row previews T2 any more: {counts:?}"
    );
}

#[tokio::test]
async fn a_remove_then_a_newer_insert_in_one_batch_ends_at_the_insert_without_a_fallback() {
    let table = conversation(T2, "deleted", &[(T1, "older"), (T3, "newest")]).await;

    let response = table
        .invoke(event(vec![
            remove_record("g", T2, "10"),
            message_record("g", T3, "newest", "11"),
        ]))
        .await
        .unwrap();

    no_failures(&response);
    assert_eq!(table.row_summaries("g").await, both(T3, "newest"));
    assert_eq!(
        table.requests.counts().get("Query"),
        Some(&1),
        "no fallback read"
    );
}

#[tokio::test]
async fn an_insert_then_its_remove_in_one_batch_leaves_the_rows_at_the_older_message() {
    let table = conversation(T1, "older", &[(T1, "older")]).await;

    let response = table
        .invoke(event(vec![
            message_record("g", T2, "sent by mistake", "10"),
            remove_record("g", T2, "11"),
        ]))
        .await
        .unwrap();

    no_failures(&response);
    assert_eq!(table.row_summaries("g").await, both(T1, "older"));
}

/// Owner a has conversations g1 (with b) and g2 (with c); both get a message at the same instant.
async fn two_conversations_of_one_owner() -> TestTable {
    let table = TestTable::new().await;
    table
        .put([
            group_row("a", "g1", T0, "old 1"),
            group_row("b", "g1", T0, "old 1"),
            group_row("a", "g2", T1, "old 2"),
            group_row("c", "g2", T1, "old 2"),
        ])
        .await;
    table
}

async fn assert_both_listed(table: &TestTable) {
    assert_both_listed_with(table, "hello g2").await;
}

/// [`assert_both_listed`], with g2's rows showing `g2_text`.
async fn assert_both_listed_with(table: &TestTable, g2_text: &str) {
    let nudged = timestamp::nudge(T3, 1).unwrap();
    let mut a_rows: Vec<(String, String, String)> = table
        .all_items()
        .await
        .into_iter()
        .filter(|item| s(item, "pk") == "GRP#a")
        .map(|item| {
            (
                s(&item, "message_group_uuid"),
                s(&item, "sk"),
                s(&item, "message"),
            )
        })
        .collect();
    a_rows.sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(a_rows.len(), 2, "one row per conversation: {a_rows:?}");
    let sks: Vec<&str> = a_rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(
        sks,
        [T3, nudged.as_str()],
        "one at the instant, one nudged past it"
    );
    for (group, _, text) in &a_rows {
        let expected = match group.as_str() {
            "g2" => g2_text.to_owned(),
            _ => format!("hello {group}"),
        };
        assert_eq!(text, &expected, "each row has its own text");
    }
    let nudged_row = table
        .all_items()
        .await
        .into_iter()
        .find(|item| s(item, "sk") == nudged)
        .unwrap();
    assert_eq!(
        s(&nudged_row, MESSAGE_SK_ATTR),
        T3,
        "it says which message it previews"
    );
    // Only the colliding owner is nudged.
    assert_eq!(
        table
            .row_summaries("g1")
            .await
            .iter()
            .filter(|r| r.0 != "GRP#a")
            .map(|r| r.1.as_str())
            .collect::<Vec<_>>(),
        [T3]
    );
    assert_eq!(
        table
            .row_summaries("g2")
            .await
            .iter()
            .filter(|r| r.0 != "GRP#a")
            .map(|r| r.1.as_str())
            .collect::<Vec<_>>(),
        [T3]
    );
}

#[tokio::test]
async fn two_conversations_at_the_same_instant_in_one_batch_are_both_listed() {
    let table = two_conversations_of_one_owner().await;
    let batch = event(vec![
        message_record("g1", T3, "hello g1", "10"),
        message_record("g2", T3, "hello g2", "11"),
    ]);

    let (response, summary) =
        messaging_stream::handle(&table.app, parse_event(&batch).unwrap(), None)
            .await
            .unwrap();

    no_failures(&response);
    assert_eq!(
        (
            summary.counts.rows_moved,
            summary.counts.rows_nudged,
            summary.counts.failed_groups
        ),
        (4, 1, 0)
    );
    assert_both_listed(&table).await;

    // A replay sees every row as current: no second nudged row, no write.
    table.requests.reset();
    no_failures(&table.invoke(batch).await.unwrap());
    assert_both_listed(&table).await;
    assert_eq!(table.requests.counts().get("TransactWriteItems"), None);
}

#[tokio::test]
async fn two_conversations_at_the_same_instant_across_two_batches_are_both_listed() {
    let table = two_conversations_of_one_owner().await;
    let first = event(vec![message_record("g1", T3, "hello g1", "10")]);
    let second = event(vec![message_record("g2", T3, "hello g2", "11")]);

    no_failures(&table.invoke(first.clone()).await.unwrap());
    no_failures(&table.invoke(second.clone()).await.unwrap());
    assert_both_listed(&table).await;

    // Replays of either, in any order, change nothing.
    no_failures(&table.invoke(second).await.unwrap());
    no_failures(&table.invoke(first).await.unwrap());
    assert_both_listed(&table).await;

    // An edit of g2's message (to a new text) reaches the nudged row, g2's, and c's row of g2.
    table.requests.reset();
    no_failures(
        &table
            .invoke(event(vec![edit_record("g2", T3, "hello g2, edited", "12")]))
            .await
            .unwrap(),
    );
    assert_both_listed_with(&table, "hello g2, edited").await;
    let nudged = timestamp::nudge(T3, 1).unwrap();
    let a_g2 = table.row_summaries("g2").await;
    assert_eq!(
        a_g2,
        [
            ("GRP#a".to_owned(), nudged, "hello g2, edited".to_owned()),
            (
                "GRP#c".to_owned(),
                T3.to_owned(),
                "hello g2, edited".to_owned()
            ),
        ]
    );
    assert_eq!(
        table.requests.counts().get("TransactWriteItems"),
        Some(&1),
        "both rows rewritten in place, in one transaction"
    );
}

#[tokio::test]
async fn a_100_kb_message_in_a_60_row_group_moves_every_row() {
    let table = TestTable::new().await;
    let owners: Vec<String> = (0..60).map(|i| format!("u{i:02}")).collect();
    table
        .put(owners.iter().map(|o| group_row(o, "big", T0, "old")))
        .await;
    let text = "long message ".repeat(100_000 / 13);

    let response = table
        .invoke(event(vec![message_record("big", T1, &text, "10")]))
        .await
        .unwrap();

    no_failures(&response);
    let rows = table.row_summaries("big").await;
    assert_eq!(rows.len(), 60);
    assert!(rows
        .iter()
        .all(|(_, sk, message)| sk == T1 && *message == text));
    let transactions = table.requests.counts()["TransactWriteItems"];
    assert!(
        transactions >= 2,
        "60 rows of ~100 KB exceed one 4 MB transaction: {transactions}"
    );
}

#[tokio::test]
async fn a_row_pushed_over_the_item_limit_is_truncated_flagged_and_unflagged_later() {
    let table = TestTable::new().await;
    // Other attributes leave less room than the message needs.
    let mut row = group_row("a", "g", T0, "old");
    row.insert("user_bio".into(), items::attr(&"b".repeat(20_000)));
    table.put([row]).await;
    let text = "ü".repeat(195_000); // 390,000 bytes: fits a message item, not this row with it

    let (response, summary) = messaging_stream::handle(
        &table.app,
        parse_event(&event(vec![message_record("g", T1, &text, "10")])).unwrap(),
        None,
    )
    .await
    .unwrap();

    no_failures(&response);
    assert_eq!(summary.counts.rows_truncated, 1);
    let stored = &table.group_rows("g").await["GRP#a"][0];
    let preview = s(stored, "message");
    assert!(text.starts_with(&preview) && preview.len() < text.len());
    assert_eq!(
        stored[TRUNCATED_ATTR],
        aws_sdk_dynamodb::types::AttributeValue::Bool(true)
    );
    assert!(item_size(stored) <= MAX_ITEM_BYTES);
    assert_eq!(s(stored, "user_bio").len(), 20_000, "other attributes kept");

    // A later message that fits clears the flag.
    no_failures(
        &table
            .invoke(event(vec![message_record("g", T2, "short", "11")]))
            .await
            .unwrap(),
    );
    let stored = &table.group_rows("g").await["GRP#a"][0];
    assert_eq!(s(stored, "message"), "short");
    assert!(!stored.contains_key(TRUNCATED_ATTR));
}

#[tokio::test]
async fn preview_max_bytes_caps_the_text_at_a_character_boundary() {
    let table = TestTable::with_config(|c| c.preview_max_bytes = Some(10)).await;
    table.put([group_row("a", "g", T0, "old")]).await;

    no_failures(
        &table
            .invoke(event(vec![message_record(
                "g",
                T1,
                "ça va? très bien, merci",
                "10",
            )]))
            .await
            .unwrap(),
    );

    let stored = &table.group_rows("g").await["GRP#a"][0];
    assert_eq!(s(stored, "message"), "ça va? tr");
    assert_eq!(
        stored[TRUNCATED_ATTR],
        aws_sdk_dynamodb::types::AttributeValue::Bool(true)
    );
    // An edit of that message with a text under the cap clears the flag.
    no_failures(
        &table
            .invoke(event(vec![edit_record("g", T1, "ok", "11")]))
            .await
            .unwrap(),
    );
    let stored = &table.group_rows("g").await["GRP#a"][0];
    assert_eq!(s(stored, "message"), "ok");
    assert!(!stored.contains_key(TRUNCATED_ATTR));
}

#[tokio::test]
async fn a_fallback_onto_another_conversations_instant_is_nudged_too() {
    // a's row of g falls back to T1, where a's row of another conversation already sits.
    let table = conversation(T2, "deleted", &[(T1, "kept")]).await;
    table.put([group_row("a", "g-other", T1, "other")]).await;

    let (response, summary) = messaging_stream::handle(
        &table.app,
        parse_event(&event(vec![remove_record("g", T2, "10")])).unwrap(),
        None,
    )
    .await
    .unwrap();

    no_failures(&response);
    assert_eq!(
        (summary.counts.rows_fallen_back, summary.counts.rows_nudged),
        (2, 1)
    );
    let nudged = timestamp::nudge(T1, 1).unwrap();
    assert_eq!(
        table.row_summaries("g").await,
        vec![
            ("GRP#a".into(), nudged, "kept".into()),
            ("GRP#b".into(), T1.into(), "kept".into()),
        ]
    );
    assert_eq!(
        table.row_summaries("g-other").await,
        vec![("GRP#a".into(), T1.into(), "other".into())]
    );
}
