//! apply's decisions against scripted DynamoDB answers (`aws-smithy-mocks`), no server.
//!
//! Each test scripts the answers in the order apply must ask for them (the interceptor runs in
//! sequential mode: a request of another operation, or one more than scripted, panics), records
//! every request it is asked, and checks the requests, the outcome's counts and the error kind.
//! The races these answers stand for (a lost condition, a stale index, a same-instant collision, a
//! lost answer) are the ones DynamoDB Local cannot be made to produce on demand.

use super::*;
use crate::event::{MessageChange, MessageText, RecordRef};
use crate::model::{message_pk, GROUP_ATTR, MESSAGE_ATTR, MESSAGE_SK_ATTR, PK_ATTR, SK_ATTR};
use crate::plan::Item;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::operation::query::{QueryInput, QueryOutput};
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsInput, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::types::error::TransactionCanceledException;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason};
use aws_sdk_dynamodb::Client;
use aws_smithy_mocks::{create_mock_http_client, mock, MockResponseInterceptor, Rule, RuleMode};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::retry::RetryConfig;
use std::sync::{Arc, Mutex};

const GROUP: &str = "g1";
const OTHER_GROUP: &str = "g2";
const ALICE: &str = "GRP#alice";
const BOB: &str = "GRP#bob";
const OLD: &str = "2023-03-25T17:00:00";
const BETWEEN: &str = "2023-03-25T17:30:00";
const LATEST: &str = "2023-03-25T18:00:00";
const LATER: &str = "2023-03-25T19:00:00";

/// The requests apply made, one line each, in order.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, line: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn s(value: &AttributeValue) -> &str {
    value.as_s().map_or("?", String::as_str)
}

/// One line per Query: which of the store's reads it is, and its keys. A re-read that is not
/// strongly consistent matches none of them ("other query"), so a test expecting one fails.
fn describe_query(input: &QueryInput) -> String {
    let values = input.expression_attribute_values();
    let value = |name: &str| values.and_then(|v| v.get(name)).map_or("?", s);
    let consistent = input.consistent_read() == Some(true);
    match (input.index_name(), input.key_condition_expression()) {
        (Some(_), _) => format!("index {}", value(":g")),
        (None, Some(condition)) if consistent && condition.contains("BETWEEN") => {
            format!(
                "keys {} {}..{}",
                value(":pk"),
                value(":low"),
                value(":high")
            )
        }
        (None, Some(_)) if consistent && input.filter_expression().is_some() => {
            format!("owner {} {}", value(":pk"), value(":g"))
        }
        (None, Some(_)) if consistent && input.scan_index_forward() == Some(false) => {
            format!("messages {} limit {:?}", value(":pk"), input.limit())
        }
        _ => format!("other query {input:?}"),
    }
}

/// One line per transaction: its actions and their keys.
fn describe_transaction(input: &TransactWriteItemsInput) -> String {
    let key = |k: &std::collections::HashMap<String, AttributeValue>| {
        format!(
            "{}/{}",
            k.get(PK_ATTR).map_or("?", s),
            k.get(SK_ATTR).map_or("?", s)
        )
    };
    let actions: Vec<String> = input
        .transact_items()
        .iter()
        .map(|action| {
            if let Some(delete) = action.delete() {
                format!("Delete {}", key(delete.key()))
            } else if let Some(put) = action.put() {
                format!("Put {}", key(put.item()))
            } else if let Some(update) = action.update() {
                format!("Update {}", key(update.key()))
            } else {
                format!("{action:?}")
            }
        })
        .collect();
    format!("write {}", actions.join(", "))
}

/// A Query answered with `items`, logged.
fn query(log: &Log, items: Vec<Item>) -> Rule {
    let log = log.clone();
    mock!(Client::query)
        .match_requests(move |input| {
            log.push(describe_query(input));
            true
        })
        .then_output(move || {
            QueryOutput::builder()
                .set_items(Some(items.clone()))
                .count(items.len() as i32)
                .build()
        })
}

/// A transaction that succeeds, logged.
fn written(log: &Log) -> Rule {
    let log = log.clone();
    mock!(Client::transact_write_items)
        .match_requests(move |input| {
            log.push(describe_transaction(input));
            true
        })
        .then_output(|| TransactWriteItemsOutput::builder().build())
}

/// A transaction cancelled with one reason code per action, logged.
fn cancelled(log: &Log, codes: &[&str]) -> Rule {
    let log = log.clone();
    let reasons: Vec<CancellationReason> = codes
        .iter()
        .map(|code| CancellationReason::builder().code(*code).build())
        .collect();
    mock!(Client::transact_write_items)
        .match_requests(move |input| {
            log.push(describe_transaction(input));
            true
        })
        .then_error(move || {
            TransactWriteItemsError::TransactionCanceledException(
                TransactionCanceledException::builder()
                    .message("Transaction cancelled")
                    .set_cancellation_reasons(Some(reasons.clone()))
                    .build(),
            )
        })
}

/// A transaction whose answer never arrives as a success: the SDK sees a 500 (retries are off in
/// these clients, so this is what outlasted them).
fn answer_lost(log: &Log) -> Rule {
    let log = log.clone();
    mock!(Client::transact_write_items)
        .match_requests(move |input| {
            log.push(describe_transaction(input));
            true
        })
        .sequence()
        .http_status(500, None)
        .build()
}

/// A store whose client answers `rules` in order; one attempt per request, so each scripted answer
/// is what apply sees.
fn store(rules: &[&Rule]) -> Store {
    store_with(rules, RetryConfig::disabled(), &Tokens::default())
}

/// [`store`] with the SDK's `retry` and every attempt's transaction token recorded in `tokens`.
fn store_with(rules: &[&Rule], retry: RetryConfig, tokens: &Tokens) -> Store {
    let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::Sequential);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let sdk = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("mock", "mock", None, None, "mock"))
        .http_client(create_mock_http_client())
        .interceptor(interceptor)
        .interceptor(tokens.clone())
        .retry_config(retry)
        .build();
    Store::new(Client::from_conf(sdk), &Config::default())
}

/// The `ClientRequestToken` of every TransactWriteItems attempt, as sent (SDK retries included).
#[derive(Clone, Debug, Default)]
struct Tokens(Arc<Mutex<Vec<Option<String>>>>);

impl Intercept for Tokens {
    fn name(&self) -> &'static str {
        "Tokens"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        if target.ends_with(".TransactWriteItems") {
            let body: serde_json::Value =
                serde_json::from_slice(request.body().bytes().unwrap_or_default())?;
            let token = body["ClientRequestToken"].as_str().map(str::to_owned);
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(token);
        }
        Ok(())
    }
}

/// Every scripted answer was asked for, once.
fn assert_all_used(rules: &[&Rule]) {
    for (i, rule) in rules.iter().enumerate() {
        assert_eq!(rule.num_calls(), 1, "scripted answer {i}");
    }
}

/// `owner`'s row of `group` at `sk`, previewing `text` (of the message at `sk`).
fn row(owner: &str, sk: &str, group: &str, text: &str) -> Item {
    Item::from([
        (PK_ATTR.to_owned(), AttributeValue::S(owner.to_owned())),
        (SK_ATTR.to_owned(), AttributeValue::S(sk.to_owned())),
        (GROUP_ATTR.to_owned(), AttributeValue::S(group.to_owned())),
        (MESSAGE_ATTR.to_owned(), AttributeValue::S(text.to_owned())),
    ])
}

/// The batch: one new message in the group at `LATEST`.
fn update() -> GroupUpdate {
    let record = RecordRef {
        position: 0,
        event_id: None,
        sequence_number: None,
    };
    plan::coalesce([MessageChange::write(
        record,
        GROUP,
        LATEST,
        MessageText::new("new"),
    )])
    .remove(0)
}

fn move_line(owner: &str, from: &str, to: &str) -> String {
    format!("Delete {owner}/{from}, Put {owner}/{to}")
}

/// The Delete's condition failed (the row is no longer at its old key) and the consistent re-read
/// finds it already past the batch's message: nothing is written, and nothing moves back.
#[tokio::test]
async fn old_key_condition_failed_rereads_and_leaves_a_newer_row() {
    let log = Log::default();
    let rules = [
        query(&log, vec![row(ALICE, OLD, GROUP, "old")]),
        cancelled(&log, &["ConditionalCheckFailed", "None"]),
        query(&log, vec![row(ALICE, LATER, GROUP, "later")]),
    ];
    let rules: Vec<&Rule> = rules.iter().collect();
    let outcome = apply_group(&store(&rules), &Config::default(), &update())
        .await
        .expect("the group settles");
    assert_eq!(
        log.lines(),
        [
            format!("index {GROUP}"),
            format!("write {}", move_line(ALICE, OLD, LATEST)),
            format!("owner {ALICE} {GROUP}"),
        ]
    );
    assert_eq!(
        (
            outcome.counts.rows_moved,
            outcome.counts.rows_current,
            outcome.counts.condition_rereads,
            outcome.counts.conflict_retries
        ),
        (0, 1, 1, 0)
    );
    // It shows a later message than the batch's: its owner's list did not change.
    assert!(outcome.changed_owners.is_empty());
    assert_all_used(&rules);
}

/// A stale index read: the GSI still shows the row at its old key while the table has it at a newer
/// one, older than the batch's message. The re-read row is planned again and moved from where it is.
#[tokio::test]
async fn stale_index_read_moves_the_row_from_where_it_really_is() {
    let log = Log::default();
    let rules = [
        query(&log, vec![row(ALICE, OLD, GROUP, "old")]),
        cancelled(&log, &["ConditionalCheckFailed", "None"]),
        query(&log, vec![row(ALICE, BETWEEN, GROUP, "between")]),
        written(&log),
    ];
    let rules: Vec<&Rule> = rules.iter().collect();
    let outcome = apply_group(&store(&rules), &Config::default(), &update())
        .await
        .expect("the group settles");
    assert_eq!(
        log.lines(),
        [
            format!("index {GROUP}"),
            format!("write {}", move_line(ALICE, OLD, LATEST)),
            format!("owner {ALICE} {GROUP}"),
            format!("write {}", move_line(ALICE, BETWEEN, LATEST)),
        ]
    );
    assert_eq!(
        (
            outcome.counts.rows_moved,
            outcome.counts.rows_current,
            outcome.counts.condition_rereads,
            outcome.counts.rows_nudged
        ),
        (1, 0, 1, 0)
    );
    assert_eq!(outcome.changed_owners, [ALICE]);
    assert_all_used(&rules);
}

/// Two rows in one transaction, only Bob's at fault (`None` for Alice's actions): only Bob's row
/// is re-read, and Alice's write goes again unchanged beside Bob's new one.
#[tokio::test]
async fn only_the_row_at_fault_is_reread() {
    let log = Log::default();
    let rules = [
        query(
            &log,
            vec![row(ALICE, OLD, GROUP, "old"), row(BOB, OLD, GROUP, "old")],
        ),
        cancelled(&log, &["None", "None", "ConditionalCheckFailed", "None"]),
        query(&log, vec![row(BOB, BETWEEN, GROUP, "between")]),
        written(&log),
    ];
    let rules: Vec<&Rule> = rules.iter().collect();
    let outcome = apply_group(&store(&rules), &Config::default(), &update())
        .await
        .expect("the group settles");
    assert_eq!(
        log.lines(),
        [
            format!("index {GROUP}"),
            format!(
                "write {}, {}",
                move_line(ALICE, OLD, LATEST),
                move_line(BOB, OLD, LATEST)
            ),
            format!("owner {BOB} {GROUP}"),
            format!(
                "write {}, {}",
                move_line(ALICE, OLD, LATEST),
                move_line(BOB, BETWEEN, LATEST)
            ),
        ]
    );
    assert_eq!(
        (outcome.counts.rows_moved, outcome.counts.condition_rereads),
        (2, 1)
    );
    assert_all_used(&rules);
}

/// The re-read finds no row: the conversation was deleted meanwhile. Counted as gone, not written.
#[tokio::test]
async fn a_row_gone_before_the_write_is_counted_gone() {
    let log = Log::default();
    let rules = [
        query(&log, vec![row(ALICE, OLD, GROUP, "old")]),
        cancelled(&log, &["ConditionalCheckFailed", "None"]),
        query(&log, vec![]),
    ];
    let rules: Vec<&Rule> = rules.iter().collect();
    let outcome = apply_group(&store(&rules), &Config::default(), &update())
        .await
        .expect("the group settles");
    assert_eq!(log.lines().len(), 3);
    assert_eq!(
        (
            outcome.counts.rows_moved,
            outcome.counts.rows_gone,
            outcome.counts.condition_rereads
        ),
        (0, 1, 1)
    );
    assert_eq!(outcome.rows[0].result, RowResult::Gone);
    assert_all_used(&rules);
}

/// A same-instant collision: the Delete's condition passed, the Put's failed, because another
/// conversation of the owner holds the message's instant. One consistent read of the owner's keys
/// over the nudge range, then the row goes to the next free microsecond.
#[tokio::test]
async fn same_instant_collision_nudges_to_the_next_free_key() {
    let log = Log::default();
    let nudged = timestamp::nudge(LATEST, 1).expect("a timestamp");
    let last = timestamp::nudge(LATEST, MAX_NUDGE_MICROS).expect("a timestamp");
    let rules = [
        query(&log, vec![row(ALICE, OLD, GROUP, "old")]),
        cancelled(&log, &["None", "ConditionalCheckFailed"]),
        query(&log, vec![row(ALICE, LATEST, OTHER_GROUP, "theirs")]),
        written(&log),
    ];
    let rules: Vec<&Rule> = rules.iter().collect();
    let outcome = apply_group(&store(&rules), &Config::default(), &update())
        .await
        .expect("the group settles");
    assert_eq!(
        log.lines(),
        [
            format!("index {GROUP}"),
            format!("write {}", move_line(ALICE, OLD, LATEST)),
            format!("keys {ALICE} {LATEST}..{last}"),
            format!("write {}", move_line(ALICE, OLD, &nudged)),
        ]
    );
    assert_eq!(
        (
            outcome.counts.rows_moved,
            outcome.counts.rows_nudged,
            outcome.counts.condition_rereads
        ),
        (1, 1, 0)
    );
    assert_all_used(&rules);
}

/// The Put's condition failed and the key is held by this group's own row (another invocation
/// moved it there first): re-read it instead of nudging; it is already current.
#[tokio::test]
async fn new_key_held_by_our_own_row_rereads_instead_of_nudging() {
    let log = Log::default();
    let last = timestamp::nudge(LATEST, MAX_NUDGE_MICROS).expect("a timestamp");
    let rules = [
        query(&log, vec![row(ALICE, OLD, GROUP, "old")]),
        cancelled(&log, &["None", "ConditionalCheckFailed"]),
        query(&log, vec![row(ALICE, LATEST, GROUP, "new")]),
        query(&log, vec![row(ALICE, LATEST, GROUP, "new")]),
    ];
    let rules: Vec<&Rule> = rules.iter().collect();
    let outcome = apply_group(&store(&rules), &Config::default(), &update())
        .await
        .expect("the group settles");
    assert_eq!(
        log.lines(),
        [
            format!("index {GROUP}"),
            format!("write {}", move_line(ALICE, OLD, LATEST)),
            format!("keys {ALICE} {LATEST}..{last}"),
            format!("owner {ALICE} {GROUP}"),
        ]
    );
    assert_eq!(
        (
            outcome.counts.rows_moved,
            outcome.counts.rows_nudged,
            outcome.counts.rows_current,
            outcome.counts.condition_rereads
        ),
        (0, 0, 1, 1)
    );
    // It shows the batch's message: the owner's list may have changed (a cache to invalidate again).
    assert_eq!(outcome.changed_owners, [ALICE]);
    assert_all_used(&rules);
}

/// A throttled item is not a condition failure: the same transaction is sent again after a
/// back-off, without a re-read.
#[tokio::test]
async fn throttled_item_retries_the_same_transaction() {
    let log = Log::default();
    let rules = [
        query(&log, vec![row(ALICE, OLD, GROUP, "old")]),
        cancelled(&log, &["ThrottlingError", "None"]),
        written(&log),
    ];
    let rules: Vec<&Rule> = rules.iter().collect();
    let outcome = apply_group(&store(&rules), &Config::default(), &update())
        .await
        .expect("the group settles");
    let write = format!("write {}", move_line(ALICE, OLD, LATEST));
    assert_eq!(
        log.lines(),
        [format!("index {GROUP}"), write.clone(), write]
    );
    assert_eq!(
        (
            outcome.counts.rows_moved,
            outcome.counts.conflict_retries,
            outcome.counts.condition_rereads
        ),
        (1, 1, 0)
    );
    assert_all_used(&rules);
}

/// Throttling that outlasts `conflict_retries` fails the group with its kind, after exactly that
/// many retries.
#[tokio::test]
async fn throttling_past_the_retries_fails_the_group() {
    let log = Log::default();
    let config = Config {
        conflict_retries: 1,
        ..Config::default()
    };
    let rules = [
        query(&log, vec![row(ALICE, OLD, GROUP, "old")]),
        cancelled(&log, &["ThrottlingError", "None"]),
        cancelled(&log, &["None", "ThrottlingError"]),
    ];
    let rules: Vec<&Rule> = rules.iter().collect();
    let error = apply_group(&store(&rules), &config, &update())
        .await
        .expect_err("throttled twice with one retry allowed");
    assert_eq!(error.kind(), "ConflictRetriesExhausted");
    assert_eq!(log.lines().len(), 3);
    assert_all_used(&rules);
}

/// A condition that keeps failing after `condition_retries` re-reads fails the group.
#[tokio::test]
async fn condition_failing_past_the_rereads_fails_the_group() {
    let log = Log::default();
    let config = Config {
        condition_retries: 1,
        ..Config::default()
    };
    let rules = [
        query(&log, vec![row(ALICE, OLD, GROUP, "old")]),
        cancelled(&log, &["ConditionalCheckFailed", "None"]),
        query(&log, vec![row(ALICE, OLD, GROUP, "old")]),
        cancelled(&log, &["ConditionalCheckFailed", "None"]),
    ];
    let rules: Vec<&Rule> = rules.iter().collect();
    let error = apply_group(&store(&rules), &config, &update())
        .await
        .expect_err("one re-read allowed");
    assert_eq!(error.kind(), "ConditionRetriesExhausted");
    assert_eq!(log.lines().len(), 4);
    assert_all_used(&rules);
}

/// A reason apply has no recovery for fails the group at once, naming the code.
#[tokio::test]
async fn an_unknown_reason_fails_the_group_without_retrying() {
    let log = Log::default();
    let rules = [
        query(&log, vec![row(ALICE, OLD, GROUP, "old")]),
        cancelled(&log, &["ValidationError", "None"]),
    ];
    let rules: Vec<&Rule> = rules.iter().collect();
    let error = apply_group(&store(&rules), &Config::default(), &update())
        .await
        .expect_err("no recovery for a validation error");
    assert_eq!(error.kind(), "Cancelled");
    assert!(error.to_string().contains("ValidationError"), "{error}");
    assert_eq!(log.lines().len(), 2);
    assert_all_used(&rules);
}

/// Without per-action reasons apply cannot tell which row lost its race: it re-reads them all.
#[tokio::test]
async fn no_reasons_rereads_every_row() {
    let log = Log::default();
    let rules = [
        query(
            &log,
            vec![row(ALICE, OLD, GROUP, "old"), row(BOB, OLD, GROUP, "old")],
        ),
        cancelled(&log, &[]),
        query(&log, vec![row(ALICE, LATER, GROUP, "later")]),
        query(&log, vec![row(BOB, LATER, GROUP, "later")]),
    ];
    let rules: Vec<&Rule> = rules.iter().collect();
    let outcome = apply_group(&store(&rules), &Config::default(), &update())
        .await
        .expect("the group settles");
    // Back to front: Bob's row (the second) is re-read first.
    assert_eq!(
        log.lines()[2..],
        [
            format!("owner {BOB} {GROUP}"),
            format!("owner {ALICE} {GROUP}")
        ]
    );
    assert_eq!(
        (
            outcome.counts.rows_current,
            outcome.counts.condition_rereads
        ),
        (2, 2)
    );
    assert_all_used(&rules);
}

/// An answer lost after the write: the transaction applied, but the client saw an error after its
/// attempts. The group fails (Lambda retries the batch); the retry's index read is still stale, its
/// Delete's condition fails, and the consistent re-read shows the row already moved: nothing is
/// written twice, and the owner is still reported changed, so what followed the lost write (a
/// cache invalidation) is done again.
#[tokio::test]
async fn an_answer_lost_after_the_write_settles_on_the_retry() {
    let log = Log::default();
    let rules = [
        query(&log, vec![row(ALICE, OLD, GROUP, "old")]),
        answer_lost(&log),
        query(&log, vec![row(ALICE, OLD, GROUP, "old")]),
        cancelled(&log, &["ConditionalCheckFailed", "None"]),
        query(&log, vec![row(ALICE, LATEST, GROUP, "new")]),
    ];
    let rules: Vec<&Rule> = rules.iter().collect();
    let store = store(&rules);
    let error = apply_group(&store, &Config::default(), &update())
        .await
        .expect_err("the answer was lost");
    assert_eq!(error.kind(), "TransactionFailed");
    assert_eq!(log.lines().len(), 2);

    let outcome = apply_group(&store, &Config::default(), &update())
        .await
        .expect("the retry settles");
    let write = format!("write {}", move_line(ALICE, OLD, LATEST));
    assert_eq!(
        log.lines(),
        [
            format!("index {GROUP}"),
            write.clone(),
            format!("index {GROUP}"),
            write,
            format!("owner {ALICE} {GROUP}"),
        ]
    );
    assert_eq!(
        (
            outcome.counts.rows_moved,
            outcome.counts.rows_current,
            outcome.counts.condition_rereads
        ),
        (0, 1, 1)
    );
    assert_eq!(outcome.changed_owners, [ALICE]);
    assert_all_used(&rules);
}

/// The re-read row previews a nudged key's message: `message_sk` names the message, so a row at a
/// nudged key previewing the batch's message is current, not moved again.
#[tokio::test]
async fn a_nudged_row_previewing_the_message_is_current() {
    let log = Log::default();
    let nudged = timestamp::nudge(LATEST, 1).expect("a timestamp");
    let mut fresh = row(ALICE, &nudged, GROUP, "new");
    fresh.insert(
        MESSAGE_SK_ATTR.to_owned(),
        AttributeValue::S(LATEST.to_owned()),
    );
    let rules = [
        query(&log, vec![row(ALICE, OLD, GROUP, "old")]),
        cancelled(&log, &["ConditionalCheckFailed", "None"]),
        query(&log, vec![fresh]),
    ];
    let rules: Vec<&Rule> = rules.iter().collect();
    let outcome = apply_group(&store(&rules), &Config::default(), &update())
        .await
        .expect("the group settles");
    assert_eq!(log.lines().len(), 3);
    assert_eq!(
        (outcome.counts.rows_moved, outcome.counts.rows_current),
        (0, 1)
    );
    assert_all_used(&rules);
}

/// An answer lost inside the SDK's attempts: the first attempt gets a 500, the SDK sends the
/// transaction again, and the second attempt carries the same client request token, so DynamoDB
/// answers a transaction that did apply with success instead of a failed condition. apply sees one
/// write and one moved row. (The SDK fills the token itself when the store sets none: this pins the
/// behaviour the store relies on, not the store's own `client_request_token` call.)
#[tokio::test]
async fn an_answer_lost_within_the_sdk_retries_is_sent_again_with_the_same_token() {
    let log = Log::default();
    let tokens = Tokens::default();
    let transaction = {
        let log = log.clone();
        mock!(Client::transact_write_items)
            .match_requests(move |input| {
                log.push(describe_transaction(input));
                true
            })
            .sequence()
            .http_status(500, None)
            .output(|| TransactWriteItemsOutput::builder().build())
            .build()
    };
    let rules = [
        query(&log, vec![row(ALICE, OLD, GROUP, "old")]),
        transaction,
    ];
    let rules: Vec<&Rule> = rules.iter().collect();
    let retry = RetryConfig::standard()
        .with_max_attempts(2)
        .with_initial_backoff(std::time::Duration::from_millis(1));
    let outcome = apply_group(
        &store_with(&rules, retry, &tokens),
        &Config::default(),
        &update(),
    )
    .await
    .expect("the second attempt succeeds");
    assert_eq!(
        log.lines(),
        [
            format!("index {GROUP}"),
            format!("write {}", move_line(ALICE, OLD, LATEST)),
        ]
    );
    assert_eq!(
        (outcome.counts.rows_moved, outcome.counts.condition_rereads),
        (1, 0)
    );
    let tokens = tokens.0.lock().unwrap().clone();
    assert_eq!(tokens.len(), 2, "two attempts: {tokens:?}");
    assert!(tokens[0].is_some(), "the transaction carries a token");
    assert_eq!(tokens[0], tokens[1], "both attempts carry the same token");
    assert_eq!(rules[0].num_calls(), 1);
}

/// A REMOVE of the message two rows preview: the group's newest remaining message is read once
/// for the group (not once per row), and both rows fall back to it, the one move back in time.
#[tokio::test]
async fn a_removed_message_reads_the_fallback_once_for_the_group() {
    let log = Log::default();
    let message = |sk: &str, text: &str| {
        Item::from([
            (PK_ATTR.to_owned(), AttributeValue::S(message_pk(GROUP))),
            (SK_ATTR.to_owned(), AttributeValue::S(sk.to_owned())),
            (MESSAGE_ATTR.to_owned(), AttributeValue::S(text.to_owned())),
        ])
    };
    let rules = [
        query(
            &log,
            vec![
                row(ALICE, LATEST, GROUP, "gone"),
                row(BOB, LATEST, GROUP, "gone"),
            ],
        ),
        query(&log, vec![message(BETWEEN, "between"), message(OLD, "old")]),
        written(&log),
    ];
    let rules: Vec<&Rule> = rules.iter().collect();
    let record = RecordRef {
        position: 0,
        event_id: None,
        sequence_number: None,
    };
    let update = plan::coalesce([MessageChange::remove(record, GROUP, LATEST)]).remove(0);
    let outcome = apply_group(&store(&rules), &Config::default(), &update)
        .await
        .expect("the group settles");
    assert_eq!(
        log.lines(),
        [
            format!("index {GROUP}"),
            format!(
                "messages {} limit Some({})",
                message_pk(GROUP),
                crate::store::FALLBACK_CANDIDATES
            ),
            format!(
                "write {}, {}",
                move_line(ALICE, LATEST, BETWEEN),
                move_line(BOB, LATEST, BETWEEN)
            ),
        ]
    );
    assert_eq!(
        (outcome.counts.rows_fallen_back, outcome.counts.rows_moved),
        (2, 0)
    );
    assert_eq!(outcome.changed_owners, [ALICE, BOB]);
    assert_all_used(&rules);
}
