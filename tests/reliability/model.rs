//! Part 2 of the reliability proof: a model-based property test on DynamoDB Local.
//!
//! proptest generates a program of operations on a few groups: new messages (some older than
//! messages already sent, some at exactly the instant of another conversation's message), edits
//! and deletes of sent messages, batches delivering any of them (duplicates, out of order), two
//! invocations at once on overlapping groups, and stale reads (a group's rows read, then moved by
//! other invocations, then written from the old read through `apply::move_rows`). After every
//! operation the touched rows are checked, and at the end every row, against the model (newest
//! acknowledged message wins; an edit rewrites the row previewing it; a delete falls back to the
//! group's newest message in the table). A failure shrinks to a minimal program.
//!
//! Like DynamoDB Streams, a message key's records come in order: an edit or a delete replaces the
//! message's record, so a later delivery of that message delivers its newest record (a redelivery),
//! never an older one after it.
//!
//! Quick slice in `make test`: 12 programs from a fixed seed; `make reliability`: 500.

use crate::support::{self, Ledger, Tally};
use local::TestTable;
use messaging_stream::apply;
use messaging_stream::event::{MessageChange, MessageText, RecordRef};
use messaging_stream::plan::{self, GroupRow};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed, TestError};
use std::collections::HashMap;
use std::sync::OnceLock;
use testkit::{items, local};
use tokio::runtime::Runtime;

const GROUPS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    /// A new message in `group`, `offset` seconds from the program's clock (negative: an older
    /// message written late, e.g. a client with a slow clock).
    Send { group: usize, offset: i64 },
    /// One invocation delivering these sent messages (by index, modulo how many exist).
    Deliver(Vec<usize>),
    /// Two invocations at the same time.
    Concurrent(Vec<usize>, Vec<usize>),
    /// Read a group's rows now (the handler's GSI query), to write from later.
    Snapshot { group: usize },
    /// Apply a sent message from the last snapshot of its group: a stale read.
    StaleApply(usize),
    /// A new message in `group` at exactly the instant of sent message `pick` (another
    /// conversation's, maybe of a shared owner: a same-instant collision).
    SendAt { group: usize, pick: usize },
    /// The author edits sent message `pick` (the table changes; its record becomes a MODIFY).
    Edit(usize),
    /// The author deletes sent message `pick` (gone from the table; its record becomes a REMOVE).
    Remove(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let picks = || proptest::collection::vec(0usize..64, 1..6);
    prop_oneof![
        4 => (0..GROUPS, -30i64..30).prop_map(|(group, offset)| Op::Send { group, offset }),
        3 => picks().prop_map(Op::Deliver),
        2 => (picks(), picks()).prop_map(|(a, b)| Op::Concurrent(a, b)),
        1 => (0..GROUPS).prop_map(|group| Op::Snapshot { group }),
        2 => (0usize..64).prop_map(Op::StaleApply),
        1 => (0..GROUPS, 0usize..64).prop_map(|(group, pick)| Op::SendAt { group, pick }),
        2 => (0usize..64).prop_map(Op::Edit),
        2 => (0usize..64).prop_map(Op::Remove),
    ]
}

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// One table for every program; each program has its own groups and owners in it.
fn table() -> &'static TestTable {
    static TABLE: OnceLock<TestTable> = OnceLock::new();
    TABLE.get_or_init(|| runtime().block_on(TestTable::new()))
}

/// What the programs really did: an operation a program skips (an edit before anything was sent,
/// a delivery of nothing) does not count.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct Coverage {
    sends: usize,
    same_instant_sends: usize,
    edits: usize,
    removes: usize,
    deliveries: usize,
    edits_delivered: usize,
    removes_delivered: usize,
    concurrent_deliveries: usize,
    snapshots: usize,
    stale_writes: usize,
}

impl Coverage {
    fn add(&mut self, other: &Coverage) {
        self.sends += other.sends;
        self.same_instant_sends += other.same_instant_sends;
        self.edits += other.edits;
        self.removes += other.removes;
        self.deliveries += other.deliveries;
        self.edits_delivered += other.edits_delivered;
        self.removes_delivered += other.removes_delivered;
        self.concurrent_deliveries += other.concurrent_deliveries;
        self.snapshots += other.snapshots;
        self.stale_writes += other.stale_writes;
    }

    /// The kinds of operation no program did.
    fn missing(&self) -> Vec<String> {
        let counts = serde_json::to_value(self).expect("counts");
        let counts = counts.as_object().expect("named counts");
        counts
            .iter()
            .filter(|(_, count)| count.as_u64() == Some(0))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// A deliberate defect, to see the property fail and shrink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    None,
    /// The model lets older messages win.
    OlderWins,
    /// After each delivery one row of a delivered group is deleted, as the old Lambda's delete
    /// then put did when the put failed.
    LoseRow,
}

/// Why a program failed: the message for proptest, and the check that failed, if one did.
#[derive(Debug)]
struct Failure {
    message: String,
    tally: Option<Tally>,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure {
            message,
            tally: None,
        }
    }
}

struct Run {
    groups: Vec<support::Group>,
    ledger: Ledger,
    sent: Vec<support::Sent>,
    snapshots: HashMap<String, Vec<GroupRow>>,
    used_seconds: std::collections::HashSet<i64>,
    next_sequence: u64,
    invocations: usize,
    /// Sent messages deleted: their record is a REMOVE now.
    removed: std::collections::HashSet<usize>,
    covered: Coverage,
}

impl Run {
    /// A sent message not deleted, chosen by `pick`.
    fn live(&self, pick: usize) -> Option<usize> {
        let live: Vec<usize> = (0..self.sent.len())
            .filter(|i| !self.removed.contains(i))
            .collect();
        (!live.is_empty()).then(|| live[pick % live.len()])
    }

    /// Writes a new message to the table (as the app does) and keeps its record to deliver.
    async fn send(
        &mut self,
        table: &TestTable,
        group: &str,
        (created_at, at): (&str, support::Micros),
        text: &str,
    ) {
        table
            .put([items::message_item(group, created_at, text)])
            .await;
        self.ledger.model.learn(created_at, at);
        self.ledger
            .model
            .messages
            .entry(group.to_owned())
            .or_default()
            .insert(created_at.to_owned(), text.to_owned());
        self.sent.push(support::Sent {
            group: group.to_owned(),
            created_at: created_at.to_owned(),
            at,
            text: text.to_owned(),
            remove: false,
            record: items::message_record(group, created_at, text, "0"),
        });
    }

    fn records_without_removes(&self, picks: &[usize]) -> Vec<(usize, serde_json::Value)> {
        let mut records = self.records(picks);
        records.retain(|(i, _)| !self.sent[*i].remove);
        records
    }

    /// The records of one invocation were acknowledged: the model learns them as one batch.
    fn acknowledge(&mut self, acked: &[usize], touched: &mut Vec<String>) {
        let batch: Vec<&support::Sent> = acked.iter().map(|&i| &self.sent[i]).collect();
        self.ledger.model.apply_batch(&batch);
        touched.extend(batch.iter().map(|s| s.group.clone()));
        self.covered.removes_delivered += batch.iter().filter(|s| s.remove).count();
        self.covered.edits_delivered += batch
            .iter()
            .filter(|s| s.record["eventName"] == "MODIFY")
            .count();
    }

    fn records(&self, picks: &[usize]) -> Vec<(usize, serde_json::Value)> {
        if self.sent.is_empty() {
            return Vec::new();
        }
        picks
            .iter()
            .map(|&pick| {
                let i = pick % self.sent.len();
                (i, self.sent[i].record.clone())
            })
            .collect()
    }

    /// Gives each record of a delivery a fresh sequence number, as a redelivery would have one.
    fn renumber(
        &mut self,
        records: Vec<(usize, serde_json::Value)>,
    ) -> Vec<(usize, serde_json::Value)> {
        records
            .into_iter()
            .map(|(i, mut record)| {
                self.next_sequence += 1;
                record["dynamodb"]["SequenceNumber"] = format!("{:021}", self.next_sequence).into();
                (i, record)
            })
            .collect()
    }
}

/// Runs one invocation; every record of a fully successful one is acknowledged into the model.
async fn invoke(
    table: &TestTable,
    records: &[(usize, serde_json::Value)],
) -> Result<Vec<usize>, String> {
    let payload = serde_json::json!({
        "Records": records.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>()
    });
    let (response, _) = local::invoke(&table.app, &payload)
        .await
        .map_err(|e| format!("invocation error without any fault: {e}"))?;
    if !response.batch_item_failures.is_empty() {
        return Err(format!("a batch failed without any fault: {response:?}"));
    }
    Ok(records.iter().map(|(i, _)| *i).collect())
}

fn update_for(sent: &support::Sent) -> plan::GroupUpdate {
    plan::coalesce([MessageChange::write(
        RecordRef {
            position: 0,
            event_id: Some("stale".into()),
            sequence_number: Some("1".into()),
        },
        &sent.group,
        &sent.created_at,
        MessageText::new(sent.text.clone()),
    )])
    .remove(0)
}

/// Deletes one row of `group` behind the handler's back (`Flaw::LoseRow`).
async fn lose_a_row(table: &TestTable, ledger: &Ledger, group: &str) -> Result<(), String> {
    let (owner, _) = ledger.model.keys_of(group).remove(0);
    let rows = table
        .client
        .query()
        .table_name(table.table())
        .consistent_read(true)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", items::attr(&owner))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if let Some(row) = rows
        .items()
        .iter()
        .find(|row| items::s(row, "message_group_uuid") == group)
    {
        table
            .client
            .delete_item()
            .table_name(table.table())
            .key("pk", row["pk"].clone())
            .key("sk", row["sk"].clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn run_program(ops: Vec<Op>, flaw: Flaw) -> Result<(Tally, Tally, Coverage), Failure> {
    let table = table();
    let prefix = format!("p{}", uuid::Uuid::new_v4().simple());
    let mut rng = fastrand::Rng::with_seed(7);
    let (groups, model, items) = support::world(&prefix, GROUPS, &mut rng);
    support::load(&table.client, table.table(), items).await;
    support::load(&table.client, table.table(), support::seed_messages(&model)).await;
    let mut run = Run {
        groups,
        ledger: Ledger::new(model),
        sent: Vec::new(),
        snapshots: HashMap::new(),
        used_seconds: Default::default(),
        next_sequence: 0,
        invocations: 0,
        removed: Default::default(),
        covered: Coverage::default(),
    };
    run.ledger.model.older_wins = flaw == Flaw::OlderWins;
    for (step, op) in ops.into_iter().enumerate() {
        let mut touched: Vec<String> = Vec::new();
        match op {
            Op::Send { group, offset } => {
                let mut seconds = step as i64 * 60 + offset;
                while !run.used_seconds.insert(seconds) {
                    seconds += 1;
                }
                let group = &run.groups[group];
                let form = (step as i64 + offset).rem_euclid(4) as usize;
                let (created_at, at) = support::stamp(seconds, (step as u32) * 1_000, form);
                let text = format!("secret-{prefix}-{step}");
                let uuid = group.uuid.clone();
                run.send(table, &uuid, (&created_at, at), &text).await;
                run.covered.sends += 1;
            }
            Op::SendAt { group, pick } => {
                let Some(i) = run.live(pick) else { continue };
                let uuid = run.groups[group].uuid.clone();
                let (created_at, at) = (run.sent[i].created_at.clone(), run.sent[i].at);
                // One message per instant in a group: the model does not follow a tie's winner.
                let taken = run.sent.iter().any(|s| s.group == uuid && s.at == at);
                if taken {
                    continue;
                }
                let text = format!("secret-{prefix}-{step}");
                run.send(table, &uuid, (&created_at, at), &text).await;
                run.covered.same_instant_sends += 1;
            }
            Op::Edit(pick) => {
                let Some(i) = run.live(pick) else { continue };
                let text = format!("secret-{prefix}-{step}-edited");
                let s = &mut run.sent[i];
                table
                    .put([items::message_item(&s.group, &s.created_at, &text)])
                    .await;
                run.ledger
                    .model
                    .messages
                    .entry(s.group.clone())
                    .or_default()
                    .insert(s.created_at.clone(), text.clone());
                s.record = items::edit_record(&s.group, &s.created_at, &text, "0");
                s.text = text;
                run.covered.edits += 1;
            }
            Op::Remove(pick) => {
                let Some(i) = run.live(pick) else { continue };
                run.removed.insert(i);
                let s = &mut run.sent[i];
                table
                    .client
                    .delete_item()
                    .table_name(table.table())
                    .key("pk", items::attr(&format!("MSG#{}", s.group)))
                    .key("sk", items::attr(&s.created_at))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if let Some(messages) = run.ledger.model.messages.get_mut(&s.group) {
                    messages.remove(&s.created_at);
                }
                s.record = items::remove_record(&s.group, &s.created_at, "0");
                s.text = String::new();
                s.remove = true;
                run.covered.removes += 1;
            }
            Op::Deliver(picks) => {
                let records = run.records(&picks);
                let records = run.renumber(records);
                if !records.is_empty() {
                    run.invocations += 1;
                    let acked = invoke(table, &records).await?;
                    run.acknowledge(&acked, &mut touched);
                    run.covered.deliveries += 1;
                    if flaw == Flaw::LoseRow {
                        lose_a_row(table, &run.ledger, &touched[0]).await?;
                    }
                }
            }
            Op::Concurrent(a, b) => {
                // Lambda never runs two invocations on one message group at once; concurrent
                // deliveries of new messages still meet here, so deletes stay out of them.
                let a = run.records_without_removes(&a);
                let a = run.renumber(a);
                let b = run.records_without_removes(&b);
                let b = run.renumber(b);
                if !a.is_empty() {
                    run.invocations += 2;
                    let (ack_a, ack_b) = tokio::join!(invoke(table, &a), invoke(table, &b));
                    let (ack_a, ack_b) = (ack_a?, ack_b?);
                    run.acknowledge(&ack_a, &mut touched);
                    run.acknowledge(&ack_b, &mut touched);
                    run.covered.concurrent_deliveries += 1;
                }
            }
            Op::Snapshot { group } => {
                let uuid = run.groups[group].uuid.clone();
                let rows = table
                    .app
                    .store
                    .group_rows(&uuid)
                    .await
                    .map_err(|e| e.to_string())?;
                run.snapshots.insert(uuid, rows);
                run.covered.snapshots += 1;
            }
            Op::StaleApply(pick) => {
                let Some(i) = run.live(pick) else { continue };
                let s = run.sent[i].clone();
                let rows = match run.snapshots.get(&s.group) {
                    Some(rows) => rows.clone(),
                    None => table
                        .app
                        .store
                        .group_rows(&s.group)
                        .await
                        .map_err(|e| e.to_string())?,
                };
                run.invocations += 1;
                apply::move_rows(&table.app.store, &table.app.config, &update_for(&s), rows)
                    .await
                    .map_err(|e| format!("a stale write failed: {e}"))?;
                run.ledger.model.apply_batch(&[&s]);
                touched.push(s.group.clone());
                run.covered.stale_writes += 1;
            }
        }
        touched.sort();
        touched.dedup();
        let keys: Vec<_> = touched
            .iter()
            .flat_map(|g| run.ledger.model.keys_of(g))
            .collect();
        if !keys.is_empty() {
            let tally = run.ledger.check(&table.client, table.table(), &keys).await;
            if !tally.is_clean() {
                return Err(Failure {
                    message: format!("after step {step}: {tally:?}"),
                    tally: Some(tally),
                });
            }
            run.ledger.during.add(&tally);
        }
    }
    eprintln!(
        "sent {} invocations {} during {:?}",
        run.sent.len(),
        run.invocations,
        run.ledger.during
    );
    let end = run.ledger.check_all(&table.client, table.table()).await;
    if !end.is_clean() {
        return Err(Failure {
            message: format!("at the end: {end:?}"),
            tally: Some(end),
        });
    }
    Ok((run.ledger.during, end, run.covered))
}

/// What a run of programs did.
#[derive(Default)]
struct Totals {
    programs: usize,
    operations: usize,
    checked: Tally,
    covered: Coverage,
}

/// Runs `cases` programs from `seed` with `flaw`; a failure shrinks (at most `shrink_iters`
/// steps) to a minimal program.
fn run_programs(
    cases: u32,
    seed: u64,
    flaw: Flaw,
    shrink_iters: u32,
) -> (Result<(), TestError<Vec<Op>>>, Totals) {
    let mut config = ProptestConfig::with_cases(cases);
    config.failure_persistence = None;
    config.rng_seed = RngSeed::Fixed(seed);
    config.max_shrink_iters = shrink_iters;
    table(); // created outside any program: block_on does not nest
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let totals = std::sync::Mutex::new(Totals::default());
    let result = runner.run(&proptest::collection::vec(op(), 1..24), |ops| {
        let len = ops.len();
        let (during, end, covered) = runtime()
            .block_on(run_program(ops, flaw))
            .map_err(|failure| TestCaseError::fail(failure.message))?;
        let mut totals = totals.lock().unwrap();
        totals.programs += 1;
        totals.operations += len;
        totals.checked.add(&end);
        totals.checked.add(&during);
        totals.covered.add(&covered);
        Ok(())
    });
    (result, totals.into_inner().unwrap())
}

/// The fixed seed of the quick slice, so it runs the same programs every time; RELIABILITY_SEED
/// varies it.
fn seed() -> u64 {
    std::env::var("RELIABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0d0d_5eed)
}

#[test]
fn random_programs_match_the_model() {
    support::global_capture();
    let cases = support::size(12, 500) as u32;
    let seed = seed();
    let (result, totals) = run_programs(cases, seed, Flaw::None, 1024);
    support::report(
        "model",
        serde_json::json!({
            "programs": totals.programs, "operations": totals.operations, "seed": seed,
            "checked": totals.checked, "covered": totals.covered,
            "result": if result.is_ok() { "pass".to_owned() } else { format!("{result:?}") },
        }),
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
    assert_eq!(totals.programs, cases as usize);
    // Every kind of operation happened, not only the ones that are easy to generate.
    let missing = totals.covered.missing();
    assert!(
        missing.is_empty(),
        "no program did {missing:?}: {:?}",
        totals.covered
    );
    // Each program's end check alone reads every row: at least 2 per group.
    assert!(
        totals.checked.rows >= totals.programs * GROUPS * 2,
        "{:?}",
        totals.checked
    );
}

/// The property fails on a flaw and shrinks it to a minimal program; the failing check of that
/// program, run again, names the flaw's count.
fn flawed(flaw: Flaw) -> (Vec<Op>, Tally) {
    support::global_capture();
    let (result, _) = run_programs(16, seed(), flaw, 512);
    let ops = match result {
        Err(TestError::Fail(_, ops)) => ops,
        other => panic!("the programs passed with {flaw:?}: {other:?}"),
    };
    let failure = runtime()
        .block_on(run_program(ops.clone(), flaw))
        .expect_err("the minimal program fails again");
    let tally = failure
        .tally
        .unwrap_or_else(|| panic!("{}", failure.message));
    support::report(
        "model-flaw",
        serde_json::json!({ "flaw": format!("{flaw:?}"), "operations": ops.len(), "program": format!("{ops:?}"), "check": tally }),
    );
    (ops, tally)
}

#[test]
fn a_model_where_older_messages_win_fails_and_shrinks() {
    let (ops, tally) = flawed(Flaw::OlderWins);
    // The smallest program that shows it: a message, then a write of it (a delivery, or a write
    // from a snapshot).
    assert!(
        matches!(
            ops[..],
            [Op::Send { .. }, Op::Deliver(_) | Op::StaleApply(_)]
        ),
        "{ops:?}"
    );
    assert!(tally.ahead >= 2, "{tally:?}");
    assert_eq!(
        tally,
        Tally {
            rows: tally.rows,
            ahead: tally.ahead,
            ..Tally::default()
        }
    );
}

#[test]
fn a_row_lost_behind_the_handler_fails_and_shrinks() {
    let (ops, tally) = flawed(Flaw::LoseRow);
    assert!(
        matches!(ops[..], [Op::Send { .. }, Op::Deliver(_)]),
        "{ops:?}"
    );
    assert_eq!(
        tally,
        Tally {
            rows: tally.rows,
            lost: 1,
            ..Tally::default()
        }
    );
}
