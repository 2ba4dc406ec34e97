//! The checker itself (`support::Ledger` and its `Model`), on DynamoDB Local: a table damaged on
//! purpose shows in exactly the count that names the damage; a partly failed invocation excuses a
//! row only for the states it explains, and only until its group's last record is acknowledged; a
//! fully acknowledged batch, REMOVEs included, is checked exactly. The model-based programs run
//! against a deliberately wrong model in model.rs.

use crate::support::{self, Key, Ledger, Sent, Tally, TEXT_MARKER};
use aws_sdk_dynamodb::types::AttributeValue;
use messaging_stream::plan::Item;
use testkit::items;
use testkit::local::{self, TestTable};

/// A world of `groups` groups in `table` (rows and message items loaded), checked clean once.
async fn world(table: &TestTable, prefix: &str, groups: usize) -> (Vec<support::Group>, Ledger) {
    let mut rng = fastrand::Rng::with_seed(17);
    let (groups, model, items) = support::world(prefix, groups, &mut rng);
    support::load(&table.client, table.table(), items).await;
    support::load(&table.client, table.table(), support::seed_messages(&model)).await;
    let mut ledger = Ledger::new(model);
    let tally = ledger.check_all(&table.client, table.table()).await;
    assert!(tally.is_clean(), "{tally:?}");
    assert_eq!(tally.rows, ledger.model.rows.len());
    (groups, ledger)
}

/// A new message of `group`, `seconds` after the worlds' base time (newer than every seed row).
fn message(group: &str, seconds: i64, sequence: u64) -> Sent {
    let (created_at, at) = support::stamp(seconds, 0, 0);
    let text = format!("{TEXT_MARKER}checker-{sequence}");
    Sent {
        record: items::message_record(group, &created_at, &text, &format!("{sequence:021}")),
        group: group.to_owned(),
        created_at,
        at,
        text,
        remove: false,
    }
}

/// The REMOVE of `of`.
fn removal(of: &Sent, sequence: u64) -> Sent {
    Sent {
        record: items::remove_record(&of.group, &of.created_at, &format!("{sequence:021}")),
        text: String::new(),
        remove: true,
        ..of.clone()
    }
}

/// Messages the table holds once all the traffic happened (the stream reports writes after them).
async fn in_table(table: &TestTable, ledger: &mut Ledger, messages: &[&Sent]) {
    for m in messages {
        table
            .put([items::message_item(&m.group, &m.created_at, &m.text)])
            .await;
        ledger.model.learn(&m.created_at, m.at);
        ledger
            .model
            .messages
            .entry(m.group.clone())
            .or_default()
            .insert(m.created_at.clone(), m.text.clone());
    }
}

/// The real handler on `batch`, without faults: every group succeeds.
async fn run(table: &TestTable, batch: &[&Sent]) {
    let payload = items::event(batch.iter().map(|s| s.record.clone()).collect());
    let (response, summary) = local::invoke(&table.app, &payload)
        .await
        .expect("no invocation error");
    assert!(response.batch_item_failures.is_empty(), "{summary:?}");
}

/// The one row of `key`, read consistently.
async fn row(table: &TestTable, key: &Key) -> Item {
    let rows = table.group_rows(&key.1).await;
    let items = &rows[&key.0];
    assert_eq!(items.len(), 1, "{key:?}: {items:?}");
    items[0].clone()
}

/// Replaces the row of `key` with `change(row)` (a new sort key is a new item: delete, then put).
async fn rewrite(table: &TestTable, key: &Key, change: impl FnOnce(&mut Item)) {
    let old = row(table, key).await;
    let mut new = old.clone();
    change(&mut new);
    table
        .client
        .delete_item()
        .table_name(table.table())
        .key("pk", old["pk"].clone())
        .key("sk", old["sk"].clone())
        .send()
        .await
        .expect("delete a row");
    table.put([new]).await;
}

/// Moves the row of `key` to preview `sk`, keeping its text.
async fn move_to(table: &TestTable, key: &Key, sk: &str) {
    rewrite(table, key, |item| {
        item.insert("sk".into(), items::attr(sk));
    })
    .await;
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Delete,
    Double,
    /// Back to an older message, after a check saw it at its right one.
    MoveBack,
    /// The same, with nothing seen before: not applied rather than moved back.
    MoveBackUnseen,
    MoveAhead,
    UnknownKey,
    ChangeText,
    DropAttribute,
    ChangeAttribute,
}

impl Damage {
    /// The count this damage must show in, set to 1 in a clean tally of `rows` rows.
    fn expected(self, rows: usize) -> Tally {
        let mut tally = Tally {
            rows,
            ..Tally::default()
        };
        *match self {
            Damage::Delete => &mut tally.lost,
            Damage::Double => &mut tally.duplicated,
            Damage::MoveBack => &mut tally.regressed,
            Damage::MoveBackUnseen => &mut tally.behind,
            Damage::MoveAhead | Damage::UnknownKey => &mut tally.ahead,
            Damage::ChangeText => &mut tally.wrong_text,
            Damage::DropAttribute | Damage::ChangeAttribute => &mut tally.dropped_attributes,
        } = 1;
        tally
    }
}

#[tokio::test]
async fn each_kind_of_damage_shows_in_its_own_count_only() {
    support::global_capture();
    let table = TestTable::new().await;
    // An older and a newer message than any of the worlds' rows, known to the model's clock.
    let (older, older_at) = support::stamp(-100_000, 0, 0);
    let (newer, newer_at) = support::stamp(100_000, 0, 1);
    for (i, damage) in [
        Damage::Delete,
        Damage::Double,
        Damage::MoveBack,
        Damage::MoveBackUnseen,
        Damage::MoveAhead,
        Damage::UnknownKey,
        Damage::ChangeText,
        Damage::DropAttribute,
        Damage::ChangeAttribute,
    ]
    .into_iter()
    .enumerate()
    {
        let (_, mut ledger) = world(&table, &format!("damage{i}"), 3).await;
        ledger.model.learn(&older, older_at);
        ledger.model.learn(&newer, newer_at);
        let key = ledger.model.rows.keys().nth(i % 3).unwrap().clone();
        match damage {
            Damage::Delete => {
                let old = row(&table, &key).await;
                table
                    .client
                    .delete_item()
                    .table_name(table.table())
                    .key("pk", old["pk"].clone())
                    .key("sk", old["sk"].clone())
                    .send()
                    .await
                    .unwrap();
            }
            Damage::Double => {
                let mut copy = row(&table, &key).await;
                copy.insert("sk".into(), items::attr(&older));
                table.put([copy]).await;
            }
            Damage::MoveBack => move_to(&table, &key, &older).await,
            Damage::MoveBackUnseen => {
                ledger.seen.clear();
                move_to(&table, &key, &older).await;
            }
            Damage::MoveAhead => move_to(&table, &key, &newer).await,
            Damage::UnknownKey => move_to(&table, &key, "2025-01-15T10:00:00 not a time").await,
            Damage::ChangeText => {
                rewrite(&table, &key, |item| {
                    item.insert("message".into(), items::attr("another text"));
                })
                .await
            }
            Damage::DropAttribute => {
                rewrite(&table, &key, |item| {
                    item.remove("labels");
                })
                .await
            }
            Damage::ChangeAttribute => {
                rewrite(&table, &key, |item| {
                    item.insert("unread".into(), AttributeValue::N("100".into()));
                })
                .await
            }
        }
        let tally = ledger.check_all(&table.client, table.table()).await;
        assert_eq!(
            tally,
            damage.expected(ledger.model.rows.len()),
            "{damage:?} of {key:?}"
        );
    }
}

/// A batch [m1 (g0), f (g1), m3 (g0)] answered with a failure at f: g0 succeeded (it has a record
/// before the failure point), so the handler applied m3 too while only m1 is acknowledged; g1 may
/// or may not have been applied. Those states pass; a state nothing explains does not. Once the
/// retry is acknowledged the excuse is gone, and a record reported done but not applied is behind.
#[tokio::test]
async fn a_partly_failed_batch_excuses_only_the_states_it_explains() {
    support::global_capture();
    let table = TestTable::new().await;
    let (groups, mut ledger) = world(&table, "split", 2).await;
    let (g0, g1) = (groups[0].uuid.clone(), groups[1].uuid.clone());
    let (m1, f, m3, m4) = (
        message(&g0, 10, 1),
        message(&g1, 20, 2),
        message(&g0, 30, 3),
        message(&g0, 40, 4),
    );
    in_table(&table, &mut ledger, &[&m1, &f, &m3, &m4]).await;
    ledger.expect(&[m1.clone(), f.clone(), m3.clone(), m4.clone()]);
    let g0_rows = ledger.model.keys_of(&g0);
    let g1_rows = ledger.model.keys_of(&g1);

    run(&table, &[&m1, &f, &m3]).await;
    let keys = ledger.invoked(&[&m1, &f, &m3], 1);
    assert_eq!(keys.len(), g0_rows.len() + g1_rows.len());
    for key in &g0_rows {
        assert_eq!(
            ledger.model.rows[key].sk, m1.created_at,
            "only m1 acknowledged"
        );
    }
    let tally = ledger.check(&table.client, table.table(), &keys).await;
    assert!(
        tally.is_clean(),
        "the handler's states are explained: {tally:?}"
    );

    // m4 was never delivered: nothing explains a row at it.
    move_to(&table, &g0_rows[0], &m4.created_at).await;
    let tally = ledger.check(&table.client, table.table(), &keys).await;
    assert_eq!(
        (tally.ahead, tally.regressed, tally.behind),
        (1, 0, 0),
        "{tally:?}"
    );
    // Older than m1, from m3 where it was seen: regressed.
    let (older, older_at) = support::stamp(-100_000, 0, 0);
    ledger.model.learn(&older, older_at);
    move_to(&table, &g0_rows[0], &older).await;
    let tally = ledger.check(&table.client, table.table(), &keys).await;
    assert_eq!(
        (tally.ahead, tally.regressed, tally.behind),
        (0, 1, 0),
        "{tally:?}"
    );
    move_to(&table, &g0_rows[0], &m3.created_at).await;

    // The retry from f succeeds: model and table agree, nothing is excused any more.
    run(&table, &[&f, &m3]).await;
    let keys = ledger.invoked(&[&f, &m3], 2);
    let tally = ledger.check(&table.client, table.table(), &keys).await;
    assert!(tally.is_clean(), "{tally:?}");
    assert!(ledger.excused.is_empty(), "{:?}", ledger.excused);

    // A success reported for m4 that the handler never applied: every g0 row is behind.
    let keys = ledger.invoked(&[&m4], 1);
    let tally = ledger.check(&table.client, table.table(), &keys).await;
    assert_eq!(tally.behind, g0_rows.len(), "{tally:?}");
    assert_eq!(tally.rows, g0_rows.len());
}

/// Finding 13's case: g0's rows at m5; then [REMOVE m5, f (g1), m7] fails at f. The model, knowing
/// only the REMOVE, falls back to the table's newest message m9 (its record comes later); the
/// handler applied the REMOVE and m7, so the rows sit at m7. After the retry the model keeps m9
/// (newer than m7), the handler m7: excused while m9's record is still to come, behind once the
/// group has no record left.
#[tokio::test]
async fn an_excuse_lasts_until_the_groups_last_record_is_acknowledged() {
    support::global_capture();
    let table = TestTable::new().await;
    for m9_in_stream in [true, false] {
        let prefix = format!("last{m9_in_stream}");
        let (groups, mut ledger) = world(&table, &prefix, 2).await;
        let (g0, g1) = (groups[0].uuid.clone(), groups[1].uuid.clone());
        let (m5, f, m7, m9) = (
            message(&g0, 50, 1),
            message(&g1, 60, 2),
            message(&g0, 70, 3),
            message(&g0, 90, 4),
        );
        let remove_m5 = removal(&m5, 5);
        // m5 is deleted by the end: the table holds m7 and m9.
        ledger.model.learn(&m5.created_at, m5.at);
        in_table(&table, &mut ledger, &[&f, &m7, &m9]).await;
        let mut stream = vec![m5.clone(), remove_m5.clone(), f.clone(), m7.clone()];
        if m9_in_stream {
            stream.push(m9.clone());
        }
        ledger.expect(&stream);
        let g0_rows = ledger.model.keys_of(&g0);

        run(&table, &[&m5]).await;
        let keys = ledger.invoked(&[&m5], 1);
        let tally = ledger.check(&table.client, table.table(), &keys).await;
        assert!(tally.is_clean(), "{tally:?}");

        run(&table, &[&remove_m5, &f, &m7]).await;
        let keys = ledger.invoked(&[&remove_m5, &f, &m7], 1);
        assert_eq!(ledger.model.rows[&g0_rows[0]].sk, m9.created_at);
        let tally = ledger.check(&table.client, table.table(), &keys).await;
        assert!(tally.is_clean(), "{tally:?}");

        run(&table, &[&f, &m7]).await;
        let keys = ledger.invoked(&[&f, &m7], 2);
        assert_eq!(ledger.model.rows[&g0_rows[0]].sk, m9.created_at);
        let tally = ledger.check(&table.client, table.table(), &keys).await;
        if m9_in_stream {
            assert!(tally.is_clean(), "m9 still to come: {tally:?}");
            run(&table, &[&m9]).await;
            let keys = ledger.invoked(&[&m9], 1);
            let tally = ledger.check(&table.client, table.table(), &keys).await;
            assert!(tally.is_clean(), "{tally:?}");
            assert!(ledger.excused.is_empty(), "{:?}", ledger.excused);
        } else {
            assert_eq!(
                tally.behind,
                g0_rows.len(),
                "no record of g0 left: {tally:?}"
            );
        }
    }
}

/// [m3, m5] then [REMOVE m5], each acknowledged whole: the rows fall back to m3, and are checked
/// exactly: a row left at the removed m5 is ahead, one that fell back too far regressed.
#[tokio::test]
async fn a_fully_acknowledged_remove_is_checked_exactly() {
    support::global_capture();
    let table = TestTable::new().await;
    let (groups, mut ledger) = world(&table, "remove", 2).await;
    let g0 = groups[0].uuid.clone();
    let (m3, m5) = (message(&g0, 30, 1), message(&g0, 50, 2));
    let remove_m5 = removal(&m5, 3);
    ledger.model.learn(&m5.created_at, m5.at);
    in_table(&table, &mut ledger, &[&m3]).await;
    ledger.expect(&[m3.clone(), m5.clone(), remove_m5.clone()]);
    let g0_rows = ledger.model.keys_of(&g0);

    run(&table, &[&m3, &m5]).await;
    let keys = ledger.invoked(&[&m3, &m5], 2);
    assert!(ledger
        .check(&table.client, table.table(), &keys)
        .await
        .is_clean());
    run(&table, &[&remove_m5]).await;
    let keys = ledger.invoked(&[&remove_m5], 1);
    assert_eq!(ledger.model.rows[&g0_rows[0]].sk, m3.created_at);
    let tally = ledger.check(&table.client, table.table(), &keys).await;
    assert!(tally.is_clean(), "the fallback is no regression: {tally:?}");

    move_to(&table, &g0_rows[0], &m5.created_at).await;
    let seed = ledger.model.messages[&g0]
        .keys()
        .find(|sk| **sk != m3.created_at)
        .expect("the group's seed message")
        .clone();
    move_to(&table, &g0_rows[1], &seed).await;
    let tally = ledger.check(&table.client, table.table(), &keys).await;
    assert_eq!(
        tally,
        Tally {
            rows: g0_rows.len(),
            ahead: 1,
            regressed: 1,
            ..Tally::default()
        }
    );
}
