//! What the reliability tests share: a world of groups and owners with its expected state (the
//! model), the check of a table against it, clients that go through the fault proxy, a driver
//! that delivers records with the local stream trigger's retry rules, and the quick/full switch.
//!
//! The model is deliberately simple: every (owner, group) row must exist exactly once, preview the
//! message the acknowledged records leave it at by the batch rules, carry that message's text, and
//! keep every other attribute it started with. It orders messages by the instants the test itself
//! computed when it wrote each timestamp (`stamp`), never by the function's `timestamp` module.
#![allow(dead_code)] // each reliability test binary uses its own part

use aws_sdk_dynamodb::config::retry::RetryPartition;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use ddb::event_source_mapping::batching::{Answer, Pending, RetryPolicy, Settled, ShardQueue};
use messaging_stream::model::{MESSAGE_SK_ATTR, TRUNCATED_ATTR};
use messaging_stream::plan::Item;
use messaging_stream::{App, Config};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use testkit::items::attr;
use testkit::request_log::RequestLog;
use testkit::{items, local};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// A log buffer: a `MakeWriter` for tracing-subscriber that keeps every line.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Everything written so far, emptying the buffer.
    pub fn take(&self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut *self.0.lock().unwrap())).into_owned()
    }

    /// A subscriber with the Lambda's layers at `level` (`messaging_stream::logging::layer`, its
    /// cap included), writing every line into this buffer in both the text and the JSON format.
    pub fn subscriber(&self, level: LevelFilter) -> impl tracing::Subscriber + Send + Sync {
        use messaging_stream::logging::{layer, LogSettings};
        let (text, json) = (self.clone(), self.clone());
        let settings = |json| LogSettings {
            json,
            level,
            directives: None,
        };
        tracing_subscriber::registry()
            .with(layer(&settings(false), move || text.clone(), false))
            .with(layer(&settings(true), move || json.clone(), false))
    }
}

/// The process-wide capture of this test binary: every line any test logs on any thread (those
/// that set a subscriber of their own for their thread aside), at the Lambda's most verbose
/// setting (TRACE: our code at TRACE, the SDK and hyper at DEBUG). Installed on first use.
pub fn global_capture() -> &'static Captured {
    static CAPTURE: OnceLock<Captured> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Captured::default();
        capture.subscriber(LevelFilter::TRACE).init();
        capture
    })
}

/// Every generated message text holds this marker, so one pass over the logs finds any of them.
pub const TEXT_MARKER: &str = "secret-";

/// True for `make reliability` (RELIABILITY_FULL=1): full sizes instead of the quick slices.
pub fn full() -> bool {
    std::env::var("RELIABILITY_FULL").is_ok_and(|v| v == "1")
}

/// The quick size, or the full one under `make reliability`.
pub fn size(quick: usize, full_size: usize) -> usize {
    if full() {
        full_size
    } else {
        quick
    }
}

/// Where `make reliability` collects figures: one JSON line per result, appended.
pub fn report(part: &str, figures: Value) {
    let line = serde_json::json!({ "part": part, "full": full(), "figures": figures });
    eprintln!("RELIABILITY {line}");
    if let Some(path) = std::env::var_os("RELIABILITY_REPORT") {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open RELIABILITY_REPORT");
        writeln!(file, "{line}").expect("write RELIABILITY_REPORT");
    }
}

/// A client of `config` sent to `endpoint` with the production retry mode and attempts, in its
/// own retry partition (the SDK shares retry tokens and the adaptive rate limiter per partition,
/// process-wide, so one cell's throttling would otherwise slow the next), counting requests.
/// `initial_backoff` scales the SDK's back-off (1 s by default) so test runs stay short.
pub async fn client_via(
    config: &Config,
    endpoint: &str,
    partition: &str,
    initial_backoff: Option<Duration>,
    log: &RequestLog,
) -> Client {
    let mut config = config.clone();
    config.endpoint_url = Some(endpoint.to_owned());
    let mut retry = config.retry_config();
    if let Some(backoff) = initial_backoff {
        retry = retry.with_initial_backoff(backoff);
    }
    local::client_with(&config, |dynamodb| {
        dynamodb
            .retry_config(retry)
            .retry_partition(RetryPartition::new(format!(
                "{partition}-{}",
                uuid::Uuid::new_v4().simple()
            )))
            .interceptor(log.clone())
    })
    .await
}

/// An instant in epoch microseconds, as the test computes it when it writes a timestamp: the
/// model and the checks order messages by these, never by the function's `timestamp` module, so
/// an ordering bug in the function cannot hide in its own oracle.
pub type Micros = i64;

/// The instant of `seconds` after the worlds' base time, plus `micros`.
fn micros_at(seconds: i64, micros: u32) -> Micros {
    (1_736_935_200 + seconds) * 1_000_000 + Micros::from(micros)
}

/// A timestamp in one of the forms seen in real data (with offset, naive (UTC), `Z`, with and
/// without fraction), and the instant it names: what the form keeps of `micros` (all of it,
/// milliseconds, or nothing), computed here rather than parsed back.
pub fn stamp(seconds: i64, micros: u32, form: usize) -> (String, Micros) {
    let at = chrono::DateTime::from_timestamp(1_736_935_200 + seconds, micros * 1000)
        .expect("in range")
        .naive_utc();
    match form % 4 {
        0 => (
            format!("{}+00:00", at.format("%Y-%m-%dT%H:%M:%S%.6f")),
            micros_at(seconds, micros),
        ),
        1 => (
            at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
            micros_at(seconds, micros),
        ),
        2 => (
            format!("{}Z", at.format("%Y-%m-%dT%H:%M:%S%.3f")),
            micros_at(seconds, micros / 1000 * 1000),
        ),
        _ => (
            at.format("%Y-%m-%dT%H:%M:%S").to_string(),
            micros_at(seconds, 0),
        ),
    }
}

/// The timestamp of [`stamp`] alone.
pub fn timestamp(seconds: i64, micros: u32, form: usize) -> String {
    stamp(seconds, micros, form).0
}

/// One conversation: its uuid and the owners who have a row for it.
#[derive(Debug, Clone)]
pub struct Group {
    pub uuid: String,
    pub owners: Vec<String>,
}

/// (owner pk, group): one conversation row.
pub type Key = (String, String);

/// What one row must be at the end.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The message the row previews (its sort key, or `message_sk` when nudged).
    pub sk: String,
    pub text: String,
    /// Every attribute but `sk` and `message`, as written at the start.
    pub rest: Item,
}

/// A row's place in its conversation: the message it previews and the text it shows.
pub type State = (String, String);

/// The expected state of every (owner pk, group) row of a world.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub rows: BTreeMap<Key, Expected>,
    pub groups: BTreeMap<String, Vec<String>>,
    /// The message items the table holds per group (sk -> text), where a REMOVE falls back to.
    pub messages: BTreeMap<String, BTreeMap<String, String>>,
    /// The instant of every timestamp the test wrote (seed rows and messages), by its text.
    pub clock: HashMap<String, Micros>,
    /// A deliberate defect for the checker's own tests: older messages win.
    pub older_wins: bool,
}

/// What one batch does to one group, by the rules of README's "What the function does with a
/// batch".
struct GroupBatch {
    /// The newest message written (INSERT or MODIFY, not removed after) and its text.
    latest: Option<(String, Micros, String)>,
    /// Keys whose last record in the batch is a REMOVE.
    removed: Vec<String>,
    /// The group's newest message in the table, where a removed row falls back to.
    newest_left: Option<(String, String)>,
}

impl Model {
    /// Notes the instant of a timestamp the test wrote. One text names one instant.
    pub fn learn(&mut self, sk: &str, at: Micros) {
        let known = *self.clock.entry(sk.to_owned()).or_insert(at);
        assert_eq!(known, at, "the test gave {sk} two instants");
    }

    /// The instant of a timestamp the test wrote; `None` for any other text.
    pub fn instant(&self, sk: &str) -> Option<Micros> {
        self.clock.get(sk).copied()
    }

    fn known(&self, sk: &str) -> Micros {
        self.instant(sk)
            .unwrap_or_else(|| panic!("the test wrote {sk} without its instant"))
    }

    /// True when `a` wins over `b` (is newer; older under the deliberate defect).
    fn wins(&self, a: Micros, b: Micros) -> bool {
        if self.older_wins {
            a < b
        } else {
            a > b
        }
    }

    /// A message, delivered and acknowledged on its own.
    pub fn apply(&mut self, sent: &Sent) {
        self.apply_batch(&[sent]);
    }

    /// Records of one batch delivered and acknowledged, in batch order. Per message key the last
    /// record counts (an INSERT then a REMOVE of one message in a batch is no message at all);
    /// then per group the newest written message moves rows forward, a removed key that a row
    /// previews makes it fall back, and an edit of the key a row previews rewrites its text.
    pub fn apply_batch(&mut self, batch: &[&Sent]) {
        for sent in batch {
            self.learn(&sent.created_at, sent.at);
        }
        let mut next = Vec::new();
        for (group, records) in per_group(batch) {
            for key in self.keys_of(group) {
                let state = self.step(group, &records, self.state(&key));
                next.push((key, state));
            }
        }
        for (key, (sk, text)) in next {
            let row = self.rows.get_mut(&key).expect("every owner has a row");
            (row.sk, row.text) = (sk, text);
        }
    }

    /// Where one group's records of a batch leave a row at `state`.
    pub fn step(&self, group: &str, records: &[&Sent], (sk, text): State) -> State {
        let outcome = self.outcome(group, records);
        match outcome.latest {
            Some((latest, at, text)) if self.wins(at, self.known(&sk)) => (latest, text),
            _ if outcome.removed.contains(&sk) => match outcome.newest_left {
                Some(left) => left,
                None => (sk, String::new()),
            },
            Some((latest, _, text)) if latest == sk => (sk, text),
            _ => (sk, text),
        }
    }

    fn outcome(&self, group: &str, records: &[&Sent]) -> GroupBatch {
        let mut last: BTreeMap<&str, &Sent> = BTreeMap::new();
        for sent in records {
            debug_assert_eq!(sent.group, group);
            last.insert(sent.created_at.as_str(), sent);
        }
        // Every message of one group has its own instant here, so the newest is unique.
        let latest = last
            .values()
            .filter(|s| !s.remove)
            .fold(None::<&Sent>, |best, s| match best {
                Some(b) if !self.wins(s.at, b.at) => Some(b),
                _ => Some(s),
            })
            .map(|s| (s.created_at.clone(), s.at, s.text.clone()));
        let removed = last
            .values()
            .filter(|s| s.remove)
            .map(|s| s.created_at.clone())
            .collect();
        let newest_left = self.messages.get(group).and_then(|messages| {
            messages
                .iter()
                .fold(None::<(&String, &String)>, |best, (sk, text)| match best {
                    Some(b) if !self.wins(self.known(sk), self.known(b.0)) => Some(b),
                    _ => Some((sk, text)),
                })
                .map(|(sk, text)| (sk.clone(), text.clone()))
        });
        GroupBatch {
            latest,
            removed,
            newest_left,
        }
    }

    /// The row keys of `group`.
    pub fn keys_of(&self, group: &str) -> Vec<Key> {
        self.groups
            .get(group)
            .into_iter()
            .flatten()
            .map(|owner| (owner.clone(), group.to_owned()))
            .collect()
    }

    /// A row's expected state.
    pub fn state(&self, key: &Key) -> State {
        let row = &self.rows[key];
        (row.sk.clone(), row.text.clone())
    }
}

/// A batch's records by group, in batch order.
fn per_group<'a>(batch: &[&'a Sent]) -> BTreeMap<&'a str, Vec<&'a Sent>> {
    let mut groups: BTreeMap<&str, Vec<&Sent>> = BTreeMap::new();
    for sent in batch {
        groups.entry(sent.group.as_str()).or_default().push(sent);
    }
    groups
}

/// Makes `groups` groups of 2 to 4 owners (owners shared between groups, as people are), each
/// row with attributes of every DynamoDB type so a dropped or altered one shows, at `prefix`.
pub fn world(
    prefix: &str,
    groups: usize,
    rng: &mut fastrand::Rng,
) -> (Vec<Group>, Model, Vec<Item>) {
    let people: Vec<String> = (0..(groups + 3))
        .map(|i| format!("{prefix}-u{i}"))
        .collect();
    let mut model = Model::default();
    let mut items = Vec::new();
    let mut out = Vec::new();
    let mut used = std::collections::HashSet::new();
    for g in 0..groups {
        let uuid = format!("{prefix}-g{g}");
        let members = 2 + rng.usize(0..3);
        let mut owners: Vec<String> = Vec::new();
        while owners.len() < members {
            let person = &people[rng.usize(0..people.len())];
            if !owners.contains(person) {
                owners.push(person.clone());
            }
        }
        // Every row of a group previews the group's last message, which is in the table (see
        // `Model::messages`). Its second is the group's own, so that no two rows of one owner
        // share a key.
        let (sk, at) = loop {
            let second = -86_400 + rng.i64(0..3_600);
            if used.insert(second) {
                break stamp(second, rng.u32(0..1_000_000), rng.usize(..));
            }
        };
        model.learn(&sk, at);
        let text = format!("seed text of {uuid}");
        model
            .messages
            .entry(uuid.clone())
            .or_default()
            .insert(sk.clone(), text.clone());
        for owner in &owners {
            let pk = format!("GRP#{owner}");
            let (sk, text) = (sk.clone(), text.clone());
            let mut item = items::group_row(owner, &uuid, &sk, &text);
            item.insert("pk".into(), attr(&pk));
            item.insert(
                "unread".into(),
                AttributeValue::N(rng.u32(0..99).to_string()),
            );
            item.insert("muted".into(), AttributeValue::Bool(rng.bool()));
            item.insert(
                "labels".into(),
                AttributeValue::Ss(vec!["work".into(), format!("l{}", rng.u8(..))]),
            );
            item.insert(
                "avatar".into(),
                AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(vec![rng.u8(..); 4])),
            );
            item.insert(
                "prefs".into(),
                AttributeValue::M(HashMap::from([
                    ("sound".to_owned(), AttributeValue::Bool(true)),
                    (
                        "tags".to_owned(),
                        AttributeValue::L(vec![attr("a"), AttributeValue::Null(true)]),
                    ),
                ])),
            );
            let mut rest = item.clone();
            rest.remove("sk");
            rest.remove("message");
            model
                .rows
                .insert((pk.clone(), uuid.clone()), Expected { sk, text, rest });
            items.push(item);
        }
        model.groups.insert(
            uuid.clone(),
            owners.iter().map(|o| format!("GRP#{o}")).collect(),
        );
        out.push(Group { uuid, owners });
    }
    (out, model, items)
}

/// The message items of a model's table (each group's last message before the traffic).
pub fn seed_messages(model: &Model) -> Vec<Item> {
    message_items(&model.messages)
}

/// Message items for group -> (sk -> text).
fn message_items(messages: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Item> {
    messages
        .iter()
        .flat_map(|(group, messages)| {
            messages
                .iter()
                .map(move |(sk, text)| items::message_item(group, sk, text))
        })
        .collect()
}

/// Deletes a test's table once its figures are taken: DynamoDB Local keeps every table and its
/// stream in memory, and a full run makes dozens of them.
pub async fn drop_table(client: &Client, table: &str) {
    client
        .delete_table()
        .table_name(table)
        .send()
        .await
        .expect("delete the test table");
}

/// Writes `items` directly (no proxy), a few at a time: hundreds at once time out on a loaded
/// DynamoDB Local.
pub async fn load(client: &Client, table: &str, items: Vec<Item>) {
    use futures::StreamExt;
    futures::stream::iter(items.into_iter().map(|item| async move {
        client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
            .expect("load a row")
    }))
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await;
}

/// How a table compares with its model. The goal of every count but `rows` is 0. A row counts in
/// at most one of regressed, behind, ahead and wrong text; lost, duplicated and dropped attributes
/// are counted on their own.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub rows: usize,
    /// Model rows with no row in the table.
    pub lost: usize,
    /// Extra rows for one (owner, group).
    pub duplicated: usize,
    /// Rows at a state nothing explains, older than where they were last seen at a right one.
    pub regressed: usize,
    /// Rows at a state nothing explains, older than the model's (a success reported for a record
    /// not applied).
    pub behind: usize,
    /// Rows at a state nothing explains, newer than the model's, or at a key the test never
    /// wrote: a removed message still shown, a message applied that was not sent.
    pub ahead: usize,
    /// Rows at the model's instant with another text (or another message of that instant).
    pub wrong_text: usize,
    /// Rows missing or changing an attribute other than `sk` and `message`.
    pub dropped_attributes: usize,
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        self.rows += other.rows;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.regressed += other.regressed;
        self.behind += other.behind;
        self.ahead += other.ahead;
        self.wrong_text += other.wrong_text;
        self.dropped_attributes += other.dropped_attributes;
    }

    pub fn is_clean(&self) -> bool {
        Tally {
            rows: self.rows,
            ..Tally::default()
        } == *self
    }
}

/// Reads every row of the owners of `keys`, strongly consistently from the base table, by
/// (owner, group).
async fn read_rows(client: &Client, table: &str, keys: &[Key]) -> HashMap<Key, Vec<Item>> {
    let mut owners: Vec<&String> = keys.iter().map(|(pk, _)| pk).collect();
    owners.sort();
    owners.dedup();
    let mut found: HashMap<Key, Vec<Item>> = HashMap::new();
    for pk in owners {
        let items: Vec<Item> = client
            .query()
            .table_name(table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", attr(pk))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .expect("read an owner's rows");
        for item in items {
            let group = items::s(&item, "message_group_uuid");
            found.entry((pk.clone(), group)).or_default().push(item);
        }
    }
    found
}

/// The message a row previews: `message_sk` on a nudged row (it sits just after its message),
/// else its sort key.
fn previewed(item: &Item) -> String {
    match items::s(item, MESSAGE_SK_ATTR) {
        previewed if !previewed.is_empty() => previewed,
        _ => items::s(item, "sk"),
    }
}

/// An item with its sets sorted: DynamoDB keeps sets unordered, so two reads may list them apart.
pub fn normalized(item: Item) -> Item {
    fn value(v: AttributeValue) -> AttributeValue {
        match v {
            AttributeValue::Ss(mut s) => {
                s.sort();
                AttributeValue::Ss(s)
            }
            AttributeValue::Ns(mut s) => {
                s.sort();
                AttributeValue::Ns(s)
            }
            AttributeValue::Bs(mut s) => {
                s.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
                AttributeValue::Bs(s)
            }
            AttributeValue::L(l) => AttributeValue::L(l.into_iter().map(value).collect()),
            AttributeValue::M(m) => {
                AttributeValue::M(m.into_iter().map(|(k, v)| (k, value(v))).collect())
            }
            other => other,
        }
    }
    item.into_iter().map(|(k, v)| (k, value(v))).collect()
}

/// A message of the stream: what the model needs, and the record Lambda delivers.
#[derive(Debug, Clone)]
pub struct Sent {
    pub group: String,
    pub created_at: String,
    /// The instant `created_at` names, as the test computed it when it wrote it.
    pub at: Micros,
    /// The text written (empty for a REMOVE).
    pub text: String,
    /// A REMOVE of the message at `created_at`.
    pub remove: bool,
    pub record: Value,
}

/// A stream of chat traffic and the message items the table holds once all of it happened.
#[derive(Debug, Clone)]
pub struct Chat {
    pub sent: Vec<Sent>,
    /// group -> (sk -> text): what is left after the edits and deletes.
    pub table: BTreeMap<String, BTreeMap<String, String>>,
    pub edits: usize,
    pub removes: usize,
    pub collisions: usize,
}

impl Chat {
    /// The message items to load into the table before delivering (the stream reports writes
    /// after they happened, so the table is ahead of the records: a REMOVE's fallback reads it).
    pub fn items(&self) -> Vec<Item> {
        message_items(&self.table)
    }

    /// Tells `model` every timestamp of the traffic and what the table holds after it.
    pub fn teach(&self, model: &mut Model) {
        for sent in &self.sent {
            model.learn(&sent.created_at, sent.at);
        }
        for (group, messages) in &self.table {
            model
                .messages
                .entry(group.clone())
                .or_default()
                .extend(messages.clone());
        }
    }
}

/// What a chat app does: new messages (some out of order), and about one in twenty each an edit
/// of an earlier message, a delete of one, and a message at exactly the instant of another
/// conversation's message that shares an owner (two conversations of one user at the same
/// instant); at least one of each in a stream of 20 or more records, however the dice fall, so a
/// short run covers them too. Per message key, records come in stream order, as DynamoDB Streams
/// guarantees.
pub fn chat(groups: &[Group], count: usize, first_sequence: u64, rng: &mut fastrand::Rng) -> Chat {
    let mut chat = Chat {
        sent: Vec::with_capacity(count),
        table: BTreeMap::new(),
        edits: 0,
        removes: 0,
        collisions: 0,
    };
    let mut used = std::collections::HashSet::new();
    // The instant of every key sent so far.
    let mut clock: HashMap<String, Micros> = HashMap::new();
    for i in 0..count {
        let sequence = format!("{:021}", first_sequence + i as u64);
        let text = format!("{TEXT_MARKER}{}-{}", uuid::Uuid::new_v4().simple(), i);
        let live: Vec<(String, String)> = chat
            .table
            .iter()
            .flat_map(|(g, m)| m.keys().map(move |sk| (g.clone(), sk.clone())))
            .collect();
        let roll = match rng.u8(0..20) {
            // Past a quarter, a half and three quarters of the stream, a kind not seen yet comes next.
            _ if count >= 20 && i >= count / 4 && chat.edits == 0 => 1,
            _ if count >= 20 && i >= count / 2 && chat.removes == 0 => 0,
            _ if count >= 20 && i >= count * 3 / 4 && chat.collisions == 0 => 2,
            roll => roll,
        };
        if roll < 2 && !live.is_empty() {
            let (group, sk) = live[rng.usize(0..live.len())].clone();
            let sent = if roll == 0 {
                chat.removes += 1;
                chat.table.get_mut(&group).expect("live").remove(&sk);
                Sent {
                    record: items::remove_record(&group, &sk, &sequence),
                    group,
                    at: clock[&sk],
                    created_at: sk,
                    text: String::new(),
                    remove: true,
                }
            } else {
                chat.edits += 1;
                chat.table
                    .get_mut(&group)
                    .expect("live")
                    .insert(sk.clone(), text.clone());
                Sent {
                    record: items::edit_record(&group, &sk, &text, &sequence),
                    group,
                    at: clock[&sk],
                    created_at: sk,
                    text,
                    remove: false,
                }
            };
            chat.sent.push(sent);
            continue;
        }
        let group = &groups[rng.usize(0..groups.len())];
        // Another conversation's live message, of an owner this one shares, at whose instant to write.
        let collide = (roll == 2)
            .then(|| {
                live.iter().find(|(g, sk)| {
                    g != &group.uuid
                        && groups.iter().any(|o| {
                            o.uuid == *g && o.owners.iter().any(|p| group.owners.contains(p))
                        })
                        && !chat
                            .table
                            .get(&group.uuid)
                            .is_some_and(|m| m.keys().any(|k| clock[k] == clock[sk]))
                })
            })
            .flatten()
            .map(|(_, sk)| sk.clone());
        let (created_at, at) = match collide {
            Some(sk) => {
                chat.collisions += 1;
                let at = clock[&sk];
                (sk, at)
            }
            None => {
                // Whole seconds are never reused, so no two messages of a group name the same
                // instant (a tie's winner depends on batching, which the model does not follow).
                let mut seconds = i as i64 * 2;
                if rng.u8(0..10) == 0 {
                    seconds -= rng.i64(1..60);
                }
                while !used.insert(seconds) {
                    seconds -= 1;
                }
                stamp(seconds, rng.u32(0..1_000_000), rng.usize(..))
            }
        };
        clock.insert(created_at.clone(), at);
        chat.table
            .entry(group.uuid.clone())
            .or_default()
            .insert(created_at.clone(), text.clone());
        chat.sent.push(Sent {
            record: items::message_record(&group.uuid, &created_at, &text, &sequence),
            group: group.uuid.clone(),
            created_at,
            at,
            text,
            remove: false,
        });
    }
    chat
}

/// Messages over `groups`, newer than every seed row, with some delivered out of order (an older
/// `created_at` after a newer one of the same group), numbered from `first_sequence`.
pub fn messages(
    groups: &[Group],
    count: usize,
    first_sequence: u64,
    rng: &mut fastrand::Rng,
) -> Vec<Sent> {
    // Whole seconds are never reused, so no two messages name the same instant (a tie's winner
    // depends on batching, which the model does not follow).
    let mut used = std::collections::HashSet::new();
    (0..count)
        .map(|i| {
            let group = &groups[rng.usize(0..groups.len())];
            // Mostly increasing with the stream, sometimes up to a minute older.
            let mut seconds = i as i64 * 2;
            if rng.u8(0..10) == 0 {
                seconds -= rng.i64(1..60);
            }
            while !used.insert(seconds) {
                seconds -= 1;
            }
            let (created_at, at) = stamp(seconds, rng.u32(0..1_000_000), rng.usize(..));
            let sequence = format!("{:021}", first_sequence + i as u64);
            let text = format!("{TEXT_MARKER}{}-{}", uuid::Uuid::new_v4().simple(), i);
            let record = items::message_record(&group.uuid, &created_at, &text, &sequence);
            Sent {
                group: group.uuid.clone(),
                created_at,
                at,
                text,
                remove: false,
                record,
            }
        })
        .collect()
}

/// The model and what the checks saw so far.
#[derive(Debug, Default)]
pub struct Ledger {
    pub model: Model,
    /// The instant of the message each row previewed when it was last seen at a right state:
    /// a row found older than that, at a state nothing explains, regressed.
    pub seen: HashMap<Key, Micros>,
    /// The checks made after each invocation, added up.
    pub during: Tally,
    /// Rows a partly failed invocation lets differ from the model, each with the states it
    /// explains (see `invoked`). An excuse ends when the row is seen at the model's state, and
    /// when its group's last record is acknowledged.
    pub excused: HashMap<Key, Vec<State>>,
    /// Per group, the records of the stream being delivered not acknowledged yet.
    pub unacknowledged: HashMap<String, usize>,
    /// Row checks that found a row at a state only its excuse explains (not the model's).
    pub explained: usize,
}

impl Ledger {
    pub fn new(model: Model) -> Self {
        Self {
            model,
            ..Self::default()
        }
    }

    /// The stream about to be delivered: a group's rows can be excused until its last record in
    /// it is acknowledged, never after.
    pub fn expect(&mut self, sent: &[Sent]) {
        for s in sent {
            *self.unacknowledged.entry(s.group.clone()).or_default() += 1;
        }
    }

    /// One invocation delivered `batch`, and its first `acknowledged` records were acknowledged
    /// (all of them for a success, the records before the failure point for a reported failure,
    /// none for an invocation error). The model learns the acknowledged ones. The handler reports
    /// a group's first record when it fails, and the earliest such record is the failure point,
    /// so a group with an acknowledged record succeeded: the handler applied all of its records
    /// in the batch, including those after the failure point that the model does not know yet. A
    /// group with no acknowledged record may have been applied (a dropped response; a group that
    /// succeeded after the failure point) or not. Each row gets, besides the model's state, the
    /// states those outcomes leave it at. Returns the rows to check.
    pub fn invoked(&mut self, batch: &[&Sent], acknowledged: usize) -> Vec<Key> {
        let (acked, _) = batch.split_at(acknowledged);
        let mut next: Vec<(Key, Vec<State>)> = Vec::new();
        for (group, records) in per_group(batch) {
            let acked_here = per_group(acked).get(group).map_or(0, Vec::len);
            for key in self.model.keys_of(group) {
                let mut states = self.excused.remove(&key).unwrap_or_default();
                states.push(self.model.state(&key));
                let applied: Vec<State> = states
                    .iter()
                    .map(|state| self.model.step(group, &records, state.clone()))
                    .collect();
                if acked_here == 0 {
                    states.extend(applied);
                } else {
                    states = applied;
                }
                next.push((key, states));
            }
        }
        self.model.apply_batch(acked);
        for s in acked {
            if let Some(left) = self.unacknowledged.get_mut(&s.group) {
                *left -= 1;
            }
        }
        let mut keys = Vec::new();
        for (key, mut states) in next {
            let model = self.model.state(&key);
            states.sort();
            states.dedup();
            states.retain(|state| *state != model);
            let open = self
                .unacknowledged
                .get(&key.1)
                .is_some_and(|left| *left > 0);
            if open && !states.is_empty() {
                self.excused.insert(key.clone(), states);
            }
            keys.push(key);
        }
        keys
    }

    /// Checks the rows of `keys`: each must be at the model's state or at one its excuse explains.
    pub async fn check(&mut self, client: &Client, table: &str, keys: &[Key]) -> Tally {
        self.compare(client, table, keys, true).await
    }

    /// Checks every row of the model against the model alone (the end of a delivery).
    pub async fn check_all(&mut self, client: &Client, table: &str) -> Tally {
        let keys: Vec<Key> = self.model.rows.keys().cloned().collect();
        self.compare(client, table, &keys, false).await
    }

    async fn compare(
        &mut self,
        client: &Client,
        table: &str,
        keys: &[Key],
        excuses: bool,
    ) -> Tally {
        // One check per row, however often a batch names its group.
        let mut keys = keys.to_vec();
        keys.sort();
        keys.dedup();
        let mut found = read_rows(client, table, &keys).await;
        let mut tally = Tally::default();
        for key in keys {
            let expected = &self.model.rows[&key];
            let rows = found.remove(&key).unwrap_or_default();
            tally.rows += 1;
            if rows.is_empty() {
                tally.lost += 1;
                continue;
            }
            tally.duplicated += rows.len() - 1;
            // The row the app would list: the one previewing the newest message.
            let newest = rows
                .iter()
                .max_by_key(|row| self.model.instant(&previewed(row)))
                .expect("not empty");
            let state = (previewed(newest), items::s(newest, "message"));
            let at = self.model.instant(&state.0);
            let model = (expected.sk.clone(), expected.text.clone());
            let excused = excuses
                && self
                    .excused
                    .get(&key)
                    .is_some_and(|states| states.contains(&state));
            if state == model || excused {
                self.seen
                    .insert(key.clone(), at.expect("a right state has a known key"));
                // The row shows which of the explained states the handler left it at.
                if state == model {
                    self.excused.remove(&key);
                } else if let Some(states) = self.excused.get_mut(&key) {
                    self.explained += 1;
                    *states = vec![state];
                }
            } else {
                let expected_at = self.model.known(&expected.sk);
                match at {
                    None => tally.ahead += 1,
                    Some(at) if self.seen.get(&key).is_some_and(|seen| at < *seen) => {
                        tally.regressed += 1
                    }
                    Some(at) if at < expected_at => tally.behind += 1,
                    Some(at) if at > expected_at => tally.ahead += 1,
                    Some(_) => tally.wrong_text += 1,
                }
            }
            let mut rest = newest.clone();
            for own in ["sk", "message", MESSAGE_SK_ATTR, TRUNCATED_ATTR] {
                rest.remove(own);
            }
            if normalized(rest) != normalized(expected.rest.clone()) {
                tally.dropped_attributes += 1;
            }
        }
        tally
    }
}

/// What delivering a stream through the handler took.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Delivery {
    /// The stream's size in batches (records / batch size).
    pub batches: usize,
    /// Records acknowledged (each once: an acknowledged record is never delivered again).
    pub records: usize,
    pub invocations: usize,
    /// Invocations that were a retry of a failed batch (or of its tail, with records after it).
    pub retries: usize,
    /// Invocations that returned an error (Lambda retries the whole batch).
    pub invocation_errors: usize,
    /// Invocations answered with a batchItemFailures entry.
    pub item_failures: usize,
    pub given_up: usize,
}

/// Delivers `sent` through the handler with the local stream trigger's rules (no bisecting,
/// retries without limit, as `MaximumRetryAttempts` -1). The model learns each record when it is
/// acknowledged; after every invocation each row of the batch's groups must be at the model's
/// state or at one the invocation's partial failure explains (`Ledger::invoked`), every count
/// applying. Panics if a batch keeps failing past `max_invocations`.
pub async fn deliver(
    app: &App,
    direct: &Client,
    sent: &[Sent],
    batch_size: usize,
    ledger: &mut Ledger,
    max_invocations: usize,
) -> Delivery {
    let mut queue = ShardQueue::new(RetryPolicy {
        batch_size,
        bisect: false,
        max_retries: None,
    });
    let by_sequence: HashMap<String, &Sent> = sent
        .iter()
        .map(|s| {
            (
                s.record["dynamodb"]["SequenceNumber"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                s,
            )
        })
        .collect();
    for s in sent {
        queue.push(Pending {
            sequence_number: s.record["dynamodb"]["SequenceNumber"]
                .as_str()
                .unwrap()
                .to_owned(),
            record: s.record.clone(),
        });
    }
    ledger.expect(sent);
    let table = app.config.table_name.clone();
    let mut delivery = Delivery::default();
    let mut retrying = false;
    while !queue.is_empty() {
        assert!(
            delivery.invocations < max_invocations,
            "no progress after {} invocations: {delivery:?}",
            delivery.invocations
        );
        let batch: Vec<Pending> = queue.batch().cloned().collect();
        let payload = serde_json::json!({
            "Records": batch.iter().map(|p| p.record.clone()).collect::<Vec<_>>()
        });
        delivery.invocations += 1;
        if retrying {
            delivery.retries += 1;
        }
        let answer = match local::invoke(app, &payload).await {
            Ok((response, _)) => Answer::Response(
                response
                    .batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier)
                    .collect(),
            ),
            Err(error) => {
                delivery.invocation_errors += 1;
                Answer::Error(error.to_string())
            }
        };
        if matches!(&answer, Answer::Response(ids) if !ids.is_empty()) {
            delivery.item_failures += 1;
        }
        let before = queue.len();
        let settled = queue.settle(batch.len(), answer);
        let acknowledged = before - queue.len();
        delivery.records += acknowledged;
        retrying = !matches!(settled, Settled::Done { .. });
        if let Settled::GaveUp(_) = settled {
            delivery.given_up += 1;
        }
        let delivered: Vec<&Sent> = batch
            .iter()
            .map(|p| by_sequence[&p.sequence_number])
            .collect();
        let keys = ledger.invoked(&delivered, acknowledged);
        let tally = ledger.check(direct, &table, &keys).await;
        ledger.during.add(&tally);
    }
    delivery.batches = sent.len().div_ceil(batch_size);
    delivery
}
