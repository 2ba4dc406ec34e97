//! The consumer on DynamoDB Local: every numbered point of the function's job, through the real SDK.

use aws_sdk_dynamodb::operation::query::QueryInput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_types::config_bag::ConfigBag;
use messaging_stream::event::{parse_event, EventError, MessageChange, MessageText, RecordRef};
use messaging_stream::plan::{self, GroupUpdate};
use messaging_stream::{apply, store::Store};
use serde_json::json;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use testkit::items::{event, group_row, message_record, s};
use testkit::local::TestTable;
use testkit::request_log::{Capacity, RequestLog};
use testkit::{items, local};

const T0: &str = "2024-05-06T09:00:00.000001+00:00";
const T1: &str = "2025-01-15T10:00:00.123456+00:00";
const T2: &str = "2025-01-15T11:00:00.5";
const T3: &str = "2025-01-15T12:00:00+00:00";

fn response_ids(response: &aws_lambda_events::streams::DynamoDbEventResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| {
            f.item_identifier
                .clone()
                .expect("identifiers are never null")
        })
        .collect()
}

fn update(group: &str, created_at: &str, text: &str) -> GroupUpdate {
    plan::coalesce([MessageChange::write(
        RecordRef {
            position: 0,
            event_id: Some("e".into()),
            sequence_number: Some("1".into()),
        },
        group,
        created_at,
        MessageText::new(text),
    )])
    .remove(0)
}

/// The rows of `group`, one per owner, as (owner pk, sk, message).
async fn rows(table: &TestTable, group: &str) -> Vec<(String, String, String)> {
    let mut rows: Vec<_> = table
        .group_rows(group)
        .await
        .into_iter()
        .map(|(pk, items)| {
            assert_eq!(
                items.len(),
                1,
                "{pk} has {} rows for group {group}",
                items.len()
            );
            (pk, s(&items[0], "sk"), s(&items[0], "message"))
        })
        .collect();
    rows.sort();
    rows
}

#[tokio::test]
async fn a_new_message_moves_every_row_keeping_every_attribute() {
    let table = TestTable::new().await;
    let mut andrew = group_row("andrew", "g1", T0, "old text");
    andrew.insert(
        "muted".into(),
        aws_sdk_dynamodb::types::AttributeValue::Bool(true),
    );
    andrew.insert(
        "unread".into(),
        aws_sdk_dynamodb::types::AttributeValue::N("3".into()),
    );
    table
        .put([andrew.clone(), group_row("bayko", "g1", T0, "old text")])
        .await;

    let response = table
        .invoke(event(vec![message_record("g1", T1, "hello", "100")]))
        .await
        .unwrap();

    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        rows(&table, "g1").await,
        vec![
            ("GRP#andrew".into(), T1.into(), "hello".into()),
            ("GRP#bayko".into(), T1.into(), "hello".into())
        ]
    );
    let moved = &table.group_rows("g1").await["GRP#andrew"][0];
    for (name, value) in &andrew {
        if name != "sk" && name != "message" {
            assert_eq!(
                moved.get(name),
                Some(value),
                "attribute {name} changed in the move"
            );
        }
    }
    assert_eq!(moved.len(), andrew.len());
}

#[tokio::test]
async fn the_same_batch_twice_leaves_the_same_table() {
    let table = TestTable::new().await;
    table
        .put([group_row("a", "g", T0, "x"), group_row("b", "g", T0, "x")])
        .await;
    let batch = event(vec![
        message_record("g", T2, "two", "2"),
        message_record("g", T1, "one", "1"),
    ]);

    table.invoke(batch.clone()).await.unwrap();
    let mut first = table.all_items().await;
    let replay = table.invoke(batch).await.unwrap();
    let mut second = table.all_items().await;

    assert!(replay.batch_item_failures.is_empty());
    let key = |i: &messaging_stream::plan::Item| (s(i, "pk"), s(i, "sk"));
    first.sort_by_key(key);
    second.sort_by_key(key);
    assert_eq!(first, second);
    assert_eq!(rows(&table, "g").await[0].1, T2);
}

#[tokio::test]
async fn an_older_batch_after_a_newer_one_changes_nothing() {
    let table = TestTable::new().await;
    table
        .put([group_row("a", "g", T0, "x"), group_row("b", "g", T0, "x")])
        .await;

    table
        .invoke(event(vec![message_record("g", T3, "newest", "3")]))
        .await
        .unwrap();
    let before = rows(&table, "g").await;
    let response = table
        .invoke(event(vec![message_record("g", T1, "older", "1")]))
        .await
        .unwrap();

    assert!(response.batch_item_failures.is_empty());
    assert_eq!(rows(&table, "g").await, before);
    assert!(before
        .iter()
        .all(|(_, sk, text)| sk == T3 && text == "newest"));
}

#[tokio::test]
async fn within_a_batch_the_newest_instant_wins_not_the_last_record() {
    let table = TestTable::new().await;
    table.put([group_row("a", "g", T0, "x")]).await;
    // "2025-01-15T12:30:00+05:30" is 07:00 UTC: later as a string, earlier as an instant than T1.
    let batch = event(vec![
        message_record("g", T1, "by instant", "1"),
        message_record("g", "2025-01-15T12:30:00+05:30", "by string", "2"),
    ]);
    table.invoke(batch).await.unwrap();
    assert_eq!(
        rows(&table, "g").await,
        vec![("GRP#a".into(), T1.into(), "by instant".into())]
    );
}

#[tokio::test]
async fn mixed_timestamp_forms_never_move_a_row_backwards() {
    let table = TestTable::new().await;
    // The row's naive sk is 10:00:00.5 UTC; the message (09:00 at -00:30 offset... i.e. 09:30 UTC) is older.
    table
        .put([group_row("a", "g", "2025-01-15T10:00:00.5", "row")])
        .await;
    table
        .invoke(event(vec![message_record(
            "g",
            "2025-01-15T09:00:00-00:30",
            "older",
            "1",
        )]))
        .await
        .unwrap();
    assert_eq!(rows(&table, "g").await[0].1, "2025-01-15T10:00:00.5");
    // The same instant written with an offset is "already current" too.
    table
        .invoke(event(vec![message_record(
            "g",
            "2025-01-15T10:00:00.500+00:00",
            "same",
            "2",
        )]))
        .await
        .unwrap();
    assert_eq!(rows(&table, "g").await[0].2, "row");
    // A later instant that sorts lower as a string ("10:00:01+00:00" vs "10:00:00.5") moves it.
    table
        .invoke(event(vec![message_record(
            "g",
            "2025-01-15T10:00:01+00:00",
            "newer",
            "3",
        )]))
        .await
        .unwrap();
    assert_eq!(rows(&table, "g").await[0].1, "2025-01-15T10:00:01+00:00");
}

#[tokio::test]
async fn a_group_chat_of_60_rows_moves_in_several_transactions() {
    let table = TestTable::new().await;
    table
        .put((0..60).map(|i| group_row(&format!("u{i:02}"), "big", T0, "x")))
        .await;
    table.requests.reset();

    let response = table
        .invoke(event(vec![message_record("big", T1, "all of you", "9")]))
        .await
        .unwrap();

    assert!(response.batch_item_failures.is_empty());
    let moved = rows(&table, "big").await;
    assert_eq!(moved.len(), 60);
    assert!(moved
        .iter()
        .all(|(_, sk, text)| sk == T1 && text == "all of you"));
    assert_eq!(table.requests.counts().get("TransactWriteItems"), Some(&2));
    assert_eq!(
        table.all_items().await.len(),
        60,
        "no row was left behind or doubled"
    );
}

#[tokio::test]
async fn a_message_for_a_group_with_no_rows_writes_nothing() {
    let table = TestTable::new().await;
    table.put([group_row("a", "other", T0, "x")]).await;
    let response = table
        .invoke(event(vec![message_record("lonely", T1, "anyone?", "5")]))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(table.all_items().await.len(), 1);
    assert_eq!(table.requests.counts().get("TransactWriteItems"), None);
}

#[tokio::test]
async fn ignored_and_malformed_records_never_fail_the_batch() {
    let table = TestTable::new().await;
    table.put([group_row("a", "g", T0, "x")]).await;
    // A REMOVE of a message no row previews: relevant, and it changes nothing.
    let remove = items::remove_record("g", T3, "1");
    let own_write = {
        let mut r = message_record("g", T3, "x", "2");
        r["dynamodb"]["Keys"]["pk"] = json!({"S": "GRP#a"});
        r
    };
    let mut malformed = message_record("g", T3, "bad", "3");
    malformed["dynamodb"]
        .as_object_mut()
        .unwrap()
        .remove("SizeBytes");
    let batch = event(vec![
        remove,
        own_write,
        malformed,
        json!("not a record"),
        message_record("g", T1, "ok", "4"),
    ]);

    let (response, summary) =
        messaging_stream::handle(&table.app, parse_event(&batch).unwrap(), None)
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
        (5, 2, 1, 2)
    );
    assert_eq!(rows(&table, "g").await[0].1, T1);
}

#[tokio::test]
async fn a_row_moved_between_query_and_write_is_reread_and_never_doubled() {
    let table = TestTable::new().await;
    table
        .put([group_row("a", "g", T0, "x"), group_row("b", "g", T0, "x")])
        .await;
    let store = Store::new(table.client.clone(), &table.config);
    let stale = store.group_rows("g").await.unwrap();

    // Another invocation moves both rows to T1 after our query.
    table
        .invoke(event(vec![message_record("g", T1, "theirs", "1")]))
        .await
        .unwrap();
    // Our write, from the stale read, to a newer message: the delete's condition fails, we re-read, we move from T1.
    let outcome = apply::move_rows(
        &store,
        &table.config,
        &update("g", T2, "ours"),
        stale.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        (outcome.counts.rows_moved, outcome.counts.condition_rereads),
        (2, 2)
    );
    assert!(rows(&table, "g")
        .await
        .iter()
        .all(|(_, sk, text)| sk == T2 && text == "ours"));

    // A stale write to an older message than what is there now: re-read, then left alone.
    let outcome = apply::move_rows(&store, &table.config, &update("g", T1, "late"), stale)
        .await
        .unwrap();
    assert_eq!(
        (outcome.counts.rows_moved, outcome.counts.rows_current),
        (0, 2)
    );
    assert!(rows(&table, "g").await.iter().all(|(_, sk, _)| sk == T2));
    assert_eq!(table.all_items().await.len(), 2);
}

/// Holds each of the first `parties` TransactWriteItems calls until all of them have been made:
/// when it opens, that many invocations have read the group's rows and are writing at once. Later
/// calls (the retries after a lost race) pass. A call held 30 s lets go and marks the barrier
/// broken, so a run whose invocations did not overlap fails instead of hanging.
#[derive(Debug, Clone)]
struct WriteBarrier {
    parties: usize,
    /// Its state, and the condition "all have arrived".
    shared: Arc<(Mutex<BarrierState>, Condvar)>,
}

#[derive(Debug, Default)]
struct BarrierState {
    held: usize,
    opened: bool,
    broken: bool,
}

impl WriteBarrier {
    fn new(parties: usize) -> Self {
        Self {
            parties,
            shared: Arc::default(),
        }
    }

    /// Whether all `parties` calls were held at once.
    fn opened(&self) -> bool {
        let state = self.shared.0.lock().unwrap();
        state.opened && !state.broken
    }
}

impl Intercept for WriteBarrier {
    fn name(&self) -> &'static str {
        "WriteBarrier"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if context
            .input()
            .downcast_ref::<TransactWriteItemsInput>()
            .is_none()
        {
            return Ok(());
        }
        let (state, all_arrived) = &*self.shared;
        let mut state = state.lock().unwrap();
        if state.held == self.parties {
            return Ok(());
        }
        state.held += 1;
        if state.held == self.parties {
            state.opened = true;
            all_arrived.notify_all();
            return Ok(());
        }
        tokio::task::block_in_place(|| {
            let (mut state, waited) = all_arrived
                .wait_timeout_while(state, Duration::from_secs(30), |state| !state.opened)
                .unwrap();
            if waited.timed_out() {
                state.broken = true;
            }
        });
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invocations_on_one_group_leave_one_row_per_owner_at_the_newest() {
    let table = TestTable::new().await;
    table
        .put((0..6).map(|i| group_row(&format!("u{i}"), "g", T0, "x")))
        .await;
    let stamps = [T1, T3, T2, "2025-01-15T11:30:00+00:00"];
    // The invocations' client holds their first writes until all four are being made.
    let barrier = WriteBarrier::new(stamps.len());
    let client = local::client_with(&table.config, |dynamodb| {
        dynamodb.interceptor(barrier.clone())
    })
    .await;
    let app = messaging_stream::App::on_client(client, table.config.clone());
    // Each invocation a task of its own, as Lambda runs them: a held write holds only its own.
    let invocations = stamps.iter().enumerate().map(|(i, stamp)| {
        let app = app.clone();
        let batch = event(vec![message_record("g", stamp, stamp, &i.to_string())]);
        tokio::spawn(async move {
            messaging_stream::handle(&app, parse_event(&batch).unwrap(), None).await
        })
    });
    let mut lost_races = 0;
    for result in futures::future::join_all(invocations).await {
        let (response, summary) = result.expect("the invocation's task").unwrap();
        assert!(response.batch_item_failures.is_empty());
        lost_races += summary.counts.condition_rereads + summary.counts.conflict_retries;
    }

    assert!(
        barrier.opened(),
        "the four invocations never had their writes in flight at once"
    );
    // All four read the rows at T0; at most one transaction can delete them there first: each of
    // the others had a condition fail (a re-read) or a conflict (a retry).
    assert!(lost_races >= 3, "only {lost_races} lost races");
    let rows = rows(&table, "g").await;
    assert_eq!(rows.len(), 6);
    assert!(
        rows.iter().all(|(_, sk, text)| sk == T3 && text == T3),
        "{rows:?}"
    );
}

#[tokio::test]
async fn a_failing_group_reports_its_earliest_record_and_the_others_still_move() {
    let table = TestTable::with_config(|c| c.condition_retries = 1).await;
    // Sort keys that are not timestamps (outside the data model): owner "a"'s other conversation
    // holds the key g-bad's row must move to, and there is no instant to nudge it from.
    table
        .put([
            group_row("a", "g-bad", "garbage-1", "x"),
            group_row("a", "g-other", "garbage-2", "taken"),
            group_row("b", "g-ok", T0, "x"),
        ])
        .await;
    let batch = event(vec![
        message_record("g-ok", T2, "fine", "10"),
        message_record("g-bad", "garbage-0", "older than the row: no-op", "11"),
        message_record("g-bad", "garbage-2", "collides", "12"),
        message_record("g-ok", T3, "fine", "13"),
    ]);

    let response = table.invoke(batch).await.unwrap();

    assert_eq!(response_ids(&response), vec!["11".to_owned()]);
    assert_eq!(rows(&table, "g-ok").await[0].1, T3);
    assert_eq!(
        rows(&table, "g-bad").await[0].1,
        "garbage-1",
        "the failed row stays where it was"
    );
    assert_eq!(table.all_items().await.len(), 3);
}

#[tokio::test]
async fn dynamodb_unreachable_fails_from_the_earliest_relevant_record() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = local::config_for(&format!("http://127.0.0.1:{closed_port}"), "t");
    config.max_attempts = 2;
    let app = messaging_stream::App::from_config(config).await;
    let batch = event(vec![
        items::remove_record("g1", T1, "100"),
        message_record("g2", T2, "x", "101"),
        message_record("g1", T1, "x", "102"),
        message_record("g2", T3, "x", "103"),
    ]);

    let (response, _) = messaging_stream::handle(&app, parse_event(&batch).unwrap(), None)
        .await
        .unwrap();

    // The REMOVE is relevant (a deleted message), so it is where the retry starts.
    assert_eq!(response_ids(&response), vec!["100".to_owned()]);
}

#[tokio::test]
async fn a_failed_record_without_sequence_number_is_an_invocation_error() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = local::config_for(&format!("http://127.0.0.1:{closed_port}"), "t");
    config.max_attempts = 1;
    let app = messaging_stream::App::from_config(config).await;
    let mut record = message_record("g", T1, "x", "1");
    record["dynamodb"]
        .as_object_mut()
        .unwrap()
        .remove("SequenceNumber");

    let result =
        messaging_stream::handle(&app, parse_event(&event(vec![record])).unwrap(), None).await;

    assert!(
        matches!(
            result,
            Err(messaging_stream::response::NoSequenceNumber { position: 0, .. })
        ),
        "{result:?}"
    );
    // As Lambda sees it: an invocation error, the whole batch retried.
    let invocation = messaging_stream::handler::HandlerError::from(result.unwrap_err());
    assert_eq!(
        lambda_runtime::Diagnostic::from(invocation).error_type,
        "NoSequenceNumber"
    );
}

#[tokio::test]
async fn an_event_without_records_is_an_invocation_error() {
    let table = TestTable::new().await;
    let result = table.invoke(json!({"detail": "not a stream"})).await;
    assert!(
        matches!(
            result,
            Err(messaging_stream::handler::HandlerError::NotAStreamEvent(
                EventError::NoRecords
            ))
        ),
        "{result:?}"
    );
    assert_eq!(
        lambda_runtime::Diagnostic::from(result.unwrap_err()).error_type,
        "NotAStreamEvent"
    );
    assert!(table
        .invoke(event(vec![]))
        .await
        .unwrap()
        .batch_item_failures
        .is_empty());
}

#[tokio::test]
async fn a_100_record_batch_over_20_groups_makes_at_most_40_requests() {
    let table = TestTable::new().await;
    for g in 0..20 {
        table
            .put([
                group_row(&format!("a{g}"), &format!("g{g}"), T0, "x"),
                group_row(&format!("b{g}"), &format!("g{g}"), T0, "x"),
            ])
            .await;
    }
    table.requests.reset();
    let records = (0..100)
        .map(|i| {
            message_record(
                &format!("g{}", i % 20),
                &format!("2025-01-15T10:{:02}:00+00:00", i / 20),
                "m",
                &format!("{}", 1000 + i),
            )
        })
        .collect();

    let response = table.invoke(event(records)).await.unwrap();

    assert!(response.batch_item_failures.is_empty());
    let counts = table.requests.counts();
    // The seed's per-record algorithm makes 1 query + 2 rows x (delete + put) = 5 requests per record: 500.
    assert!(table.requests.total() <= 40, "{counts:?}");
    assert_eq!(
        (counts.get("Query"), counts.get("TransactWriteItems")),
        (Some(&20), Some(&20)),
        "{counts:?}"
    );
    for g in 0..20 {
        assert!(rows(&table, &format!("g{g}"))
            .await
            .iter()
            .all(|(_, sk, _)| sk == "2025-01-15T10:04:00+00:00"));
    }
}

/// What a Query or TransactWriteItems of the function asks for, as the function built it (before
/// any interceptor changes it): its `ReturnConsumedCapacity`.
#[derive(Debug, Clone, Default)]
struct CapacityAsked(Arc<Mutex<Vec<Option<ReturnConsumedCapacity>>>>);

impl Intercept for CapacityAsked {
    fn name(&self) -> &'static str {
        "CapacityAsked"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input();
        let asked = if let Some(query) = input.downcast_ref::<QueryInput>() {
            query.return_consumed_capacity().cloned()
        } else if let Some(transaction) = input.downcast_ref::<TransactWriteItemsInput>() {
            transaction.return_consumed_capacity().cloned()
        } else {
            return Ok(());
        };
        self.0.lock().unwrap().push(asked);
        Ok(())
    }
}

/// The function's requests ask for no consumed capacity (nothing in it reads the figure); the test
/// kit's request log asks for it on one table's requests and adds up what DynamoDB Local reports.
#[tokio::test]
async fn the_request_log_counts_the_capacity_of_one_tables_requests() {
    let table = TestTable::new().await;
    table
        .put([group_row("a", "g", T0, "x"), group_row("b", "g", T0, "x")])
        .await;
    let asked = CapacityAsked::default();
    let ours = RequestLog::new().counting_capacity_of(table.table());
    let other = RequestLog::new().counting_capacity_of("another-table");
    let client = local::client_with(&table.config, |dynamodb| {
        dynamodb
            .interceptor(asked.clone())
            .interceptor(ours.clone())
            .interceptor(other.clone())
    })
    .await;
    let app = messaging_stream::App::on_client(client, table.config.clone());
    let batch = event(vec![message_record("g", T1, "hi", "1")]);

    let (response, summary) = messaging_stream::handle(&app, parse_event(&batch).unwrap(), None)
        .await
        .unwrap();

    assert!(response.batch_item_failures.is_empty());
    assert_eq!(summary.counts.rows_moved, 2);
    // One Query of the group's rows, one transaction moving both: neither asked by the function.
    assert_eq!(*asked.0.lock().unwrap(), vec![None, None]);
    let moved = ours.consumed();
    assert_eq!(moved.unreported, 0, "{moved:?}");
    assert!(
        moved.read_units > 0.0 && moved.write_units > 0.0,
        "{moved:?}"
    );
    assert_eq!(other.consumed(), Capacity::default());

    // A replay finds both rows current: one more Query, nothing written.
    messaging_stream::handle(&app, parse_event(&batch).unwrap(), None)
        .await
        .unwrap();
    let replayed = ours.consumed();
    assert!(replayed.read_units > moved.read_units, "{replayed:?}");
    assert_eq!(replayed.write_units, moved.write_units);
    ours.reset();
    assert_eq!(ours.consumed(), Capacity::default());
}

/// The execution policy (policies/execution-dynamodb.json) allows exactly the DynamoDB data-plane
/// actions the handler performs, on the resources it uses, with the leading keys it writes.
#[tokio::test]
async fn the_execution_policy_allows_exactly_what_the_handler_does() {
    use std::collections::BTreeSet;
    let table = TestTable::new().await;
    table
        .put([group_row("a", "g", T0, "x"), group_row("b", "g", T0, "x")])
        .await;
    let store = Store::new(table.client.clone(), &table.config);
    let stale = store.group_rows("g").await.unwrap();
    table.requests.reset();
    // Every path of the handler: the GSI query, a move, and a lost race's consistent re-read.
    table
        .invoke(event(vec![message_record("g", T1, "one", "1")]))
        .await
        .unwrap();
    apply::move_rows(&store, &table.config, &update("g", T2, "two"), stale)
        .await
        .unwrap();
    // An edit (an Update in place), a REMOVE's fallback (a Query of the MSG# partition) and a
    // same-instant collision (a Query of the owner's keys around the instant).
    table
        .put([
            items::message_item("g", T0, "zero"),
            group_row("a", "g-other", T3, "other conversation"),
        ])
        .await;
    table
        .invoke(event(vec![items::edit_record("g", T2, "two, edited", "2")]))
        .await
        .unwrap();
    table
        .invoke(event(vec![items::remove_record("g", T2, "3")]))
        .await
        .unwrap();
    table
        .invoke(event(vec![message_record("g", T3, "same instant", "4")]))
        .await
        .unwrap();
    let counts = table.requests.counts();
    // T1; the stale move and its retry; the edit; the fallback; the collision and its nudged retry.
    assert_eq!(counts.get("TransactWriteItems"), Some(&7), "{counts:?}");
    assert_eq!(
        table.row_summaries("g").await,
        vec![
            (
                "GRP#a".into(),
                "2025-01-15T12:00:00.000001+00:00".into(),
                "same instant".into()
            ),
            ("GRP#b".into(), T3.into(), "same instant".into()),
        ]
    );
    let used = table.requests.iam_uses();

    let policy: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies/execution-dynamodb.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let arn_prefix = "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:";
    let mut allowed = BTreeSet::new();
    for statement in policy["Statement"].as_array().unwrap() {
        assert_eq!(statement["Effect"], "Allow");
        let resource = statement["Resource"]
            .as_str()
            .unwrap()
            .strip_prefix(arn_prefix)
            .unwrap()
            .to_owned();
        let leading: Option<Vec<String>> = statement
            .pointer("/Condition/ForAllValues:StringLike/dynamodb:LeadingKeys")
            .map(|keys| {
                keys.as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k.as_str().unwrap().to_owned())
                    .collect()
            });
        for action in statement["Action"].as_array().unwrap() {
            allowed.insert((
                action.as_str().unwrap().to_owned(),
                resource.clone(),
                leading.clone(),
            ));
        }
    }

    let generic = |resource: &str| {
        resource.replacen(&format!("table/{}", table.table()), "table/${TableName}", 1)
    };
    let performed: BTreeSet<(String, String)> = used
        .iter()
        .map(|u| (u.action.clone(), generic(&u.resource)))
        .collect();
    let permitted: BTreeSet<(String, String)> = allowed
        .iter()
        .map(|(a, r, _)| (a.clone(), r.clone()))
        .collect();
    assert_eq!(
        performed, permitted,
        "performed vs allowed (action, resource)"
    );
    for use_ in &used {
        let (_, _, leading) = allowed
            .iter()
            .find(|(a, r, _)| *a == use_.action && *r == generic(&use_.resource))
            .unwrap();
        if let Some(patterns) = leading {
            let key = use_
                .leading_key
                .as_deref()
                .unwrap_or_else(|| panic!("{use_:?} has no leading key"));
            assert!(
                patterns
                    .iter()
                    .any(|p| key.starts_with(p.trim_end_matches('*'))),
                "{use_:?} is outside the LeadingKeys condition {patterns:?}"
            );
        }
    }
}

#[tokio::test]
async fn groups_unfinished_near_the_deadline_are_reported_before_lambda_times_out() {
    // A server that accepts connections and never answers: every request hangs.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = local::config_for(&format!("http://{}", silent.local_addr().unwrap()), "t");
    config.deadline_margin = std::time::Duration::from_millis(1_500);
    let app = messaging_stream::App::from_config(config).await;
    let mut context = lambda_runtime::Context::default();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    context.deadline = now_ms + 2_000;
    let batch = event(vec![
        message_record("g1", T1, "x", "7"),
        message_record("g2", T2, "x", "8"),
    ]);

    let started = std::time::Instant::now();
    // As the Lambda's main calls it: the deadline from the invocation's context.
    let deadline = messaging_stream::handler::lambda_deadline(&context, app.config.deadline_margin);
    let (response, _) = messaging_stream::handle(&app, parse_event(&batch).unwrap(), deadline)
        .await
        .unwrap();

    assert_eq!(response_ids(&response), vec!["7".to_owned()]);
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1_900),
        "answered after {:?}",
        started.elapsed()
    );
}
