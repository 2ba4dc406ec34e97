//! What the reliability tests share: a world of groups and owners with its expected state (the
//! model), the check of a table against it, clients that go through the fault proxy, a driver
//! that delivers records with the local stream trigger's retry rules, and the quick/full switch.
//!
//! The model is deliberately simple: every (owner, group) row must exist exactly once, sit at the
//! newest message of its group (by instant) or its original timestamp if that is newer, carry that
//! message's text, and keep every other attribute it started with.
#![allow(dead_code)] // each reliability test binary uses its own part

use crate::common::{self, attr};
use aws_sdk_dynamodb::config::retry::RetryPartition;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use messaging_stream::event_source_mapping::batching::{
    Answer, Pending, RetryPolicy, Settled, ShardQueue,
};
use messaging_stream::plan::{Item, MESSAGE_SK_ATTR, TRUNCATED_ATTR};
use messaging_stream::request_log::RequestLog;
use messaging_stream::store::Store;
use messaging_stream::timestamp;
use messaging_stream::{App, Config};
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
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

/// DynamoDB Local's address, for the proxy.
pub fn local_addr() -> SocketAddr {
    common::endpoint()
        .trim_start_matches("http://")
        .parse()
        .expect("DynamoDB Local's endpoint is 127.0.0.1:port")
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
    let sdk = messaging_stream::aws::sdk_config(&config).await;
    let mut retry = config.retry_config();
    if let Some(backoff) = initial_backoff {
        retry = retry.with_initial_backoff(backoff);
    }
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .retry_config(retry)
        .retry_partition(RetryPartition::new(format!(
            "{partition}-{}",
            uuid::Uuid::new_v4().simple()
        )))
        .interceptor(log.clone())
        .build();
    Client::from_conf(dynamodb)
}

/// The handler's app on `client`.
pub fn app(client: Client, config: &Config) -> App {
    App::new(Store::new(client, config), config.clone())
}

/// Timestamp forms seen in real data: with offset, naive (UTC), `Z`, with and without fraction.
pub fn timestamp(seconds: i64, micros: u32, form: usize) -> String {
    let at = chrono::DateTime::from_timestamp(1_736_935_200 + seconds, micros * 1000)
        .expect("in range")
        .naive_utc();
    match form % 4 {
        0 => format!("{}+00:00", at.format("%Y-%m-%dT%H:%M:%S%.6f")),
        1 => at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        2 => format!("{}Z", at.format("%Y-%m-%dT%H:%M:%S%.3f")),
        _ => at.format("%Y-%m-%dT%H:%M:%S").to_string(),
    }
}

/// One conversation: its uuid and the owners who have a row for it.
#[derive(Debug, Clone)]
pub struct Group {
    pub uuid: String,
    pub owners: Vec<String>,
}

/// What one row must be at the end.
#[derive(Debug, Clone)]
pub struct Expected {
    pub sk: String,
    pub text: String,
    /// Every attribute but `sk` and `message`, as written at the start.
    pub rest: Item,
}

/// The expected state of every (owner pk, group) row of a world.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub rows: BTreeMap<(String, String), Expected>,
    pub groups: BTreeMap<String, Vec<String>>,
    /// The message items the table holds per group (sk -> text), where a REMOVE falls back to.
    pub messages: BTreeMap<String, BTreeMap<String, String>>,
}

impl Model {
    /// A message of `group` at `created_at` was written (new or edited), delivered and acknowledged.
    pub fn apply(&mut self, group: &str, created_at: &str, text: &str) {
        for owner in self.groups.get(group).into_iter().flatten() {
            let row = self
                .rows
                .get_mut(&(owner.clone(), group.to_owned()))
                .expect("every owner has a row");
            if timestamp::is_newer(created_at, &row.sk) || row.sk == created_at {
                row.sk = created_at.to_owned();
                row.text = text.to_owned();
            }
        }
    }

    /// Records of one batch delivered and acknowledged, in batch order. Per message key the last
    /// record counts (an INSERT then a REMOVE of one message in a batch is no message at all);
    /// then per group the newest written message moves rows forward, a removed key that a row
    /// previews makes it fall back, and an edit of the key a row previews rewrites its text.
    pub fn apply_batch(&mut self, batch: &[&Sent]) {
        let mut per_group: BTreeMap<&str, BTreeMap<&str, &Sent>> = BTreeMap::new();
        for sent in batch {
            per_group
                .entry(sent.group.as_str())
                .or_default()
                .insert(sent.created_at.as_str(), sent);
        }
        for (group, keys) in per_group {
            // Every message of one group has its own instant here, so the newest is unique.
            let latest = keys
                .values()
                .filter(|s| !s.remove)
                .max_by(|a, b| timestamp::compare(&a.created_at, &b.created_at));
            let removed: Vec<&str> = keys
                .values()
                .filter(|s| s.remove)
                .map(|s| s.created_at.as_str())
                .collect();
            let newest_left = self.messages.get(group).and_then(|messages| {
                messages
                    .iter()
                    .max_by(|a, b| timestamp::compare(a.0, b.0))
                    .map(|(sk, text)| (sk.clone(), text.clone()))
            });
            for key in self.keys_of(group) {
                let row = self.rows.get_mut(&key).expect("every owner has a row");
                match latest {
                    Some(l) if timestamp::is_newer(&l.created_at, &row.sk) => {
                        (row.sk, row.text) = (l.created_at.clone(), l.text.clone());
                    }
                    _ if removed.contains(&row.sk.as_str()) => match &newest_left {
                        Some((sk, text)) => (row.sk, row.text) = (sk.clone(), text.clone()),
                        None => row.text = String::new(),
                    },
                    Some(l) if l.created_at == row.sk => row.text = l.text.clone(),
                    _ => {}
                }
            }
        }
    }

    /// The row keys of `group`.
    pub fn keys_of(&self, group: &str) -> Vec<(String, String)> {
        self.groups
            .get(group)
            .into_iter()
            .flatten()
            .map(|owner| (owner.clone(), group.to_owned()))
            .collect()
    }
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
        let sk = loop {
            let second = -86_400 + rng.i64(0..3_600);
            if used.insert(second) {
                break timestamp(second, rng.u32(0..1_000_000), rng.usize(..));
            }
        };
        let text = format!("seed text of {uuid}");
        model
            .messages
            .entry(uuid.clone())
            .or_default()
            .insert(sk.clone(), text.clone());
        for owner in &owners {
            let pk = format!("GRP#{owner}");
            let (sk, text) = (sk.clone(), text.clone());
            let mut item = common::group_row(owner, &uuid, &sk, &text);
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
                .map(move |(sk, text)| common::message_item(group, sk, text))
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

/// How a table compares with its model. The goal of every count but `rows` is 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub rows: usize,
    /// Model rows with no row in the table.
    pub lost: usize,
    /// Extra rows for one (owner, group).
    pub duplicated: usize,
    /// Rows seen at an older timestamp than they were seen at before.
    pub regressed: usize,
    /// Rows behind a message that was acknowledged (a success reported for a record not applied).
    pub behind: usize,
    /// Rows newer than every acknowledged message: a message applied twice wrongly, or one the
    /// model does not know. Legitimate only mid-delivery (applied, not yet acknowledged).
    pub ahead: usize,
    /// Rows whose text is not the text of the message they sit at.
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

/// Compares the rows of `keys` (all the model's when `None`) with the model, read strongly
/// consistently from the base table. `seen` holds the newest timestamp each row was seen at, to
/// count regressions across checks.
pub async fn check(
    client: &Client,
    table: &str,
    model: &Model,
    keys: Option<&[(String, String)]>,
    seen: &mut HashMap<(String, String), String>,
) -> Tally {
    let keys: Vec<(String, String)> = match keys {
        Some(keys) => keys.to_vec(),
        None => model.rows.keys().cloned().collect(),
    };
    let mut owners: Vec<&String> = keys.iter().map(|(pk, _)| pk).collect();
    owners.sort();
    owners.dedup();
    let mut found: HashMap<(String, String), Vec<Item>> = HashMap::new();
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
            let group = common::s(&item, "message_group_uuid");
            found.entry((pk.clone(), group)).or_default().push(item);
        }
    }
    let mut tally = Tally::default();
    for key in keys {
        let expected = &model.rows[&key];
        let rows = found.remove(&key).unwrap_or_default();
        tally.rows += 1;
        if rows.is_empty() {
            tally.lost += 1;
            continue;
        }
        tally.duplicated += rows.len() - 1;
        let newest = rows
            .iter()
            .max_by(|a, b| timestamp::compare(&common::s(a, "sk"), &common::s(b, "sk")))
            .expect("not empty");
        // A nudged row sits just after its message and names it in `message_sk`.
        let sk = match common::s(newest, MESSAGE_SK_ATTR) {
            previewed if !previewed.is_empty() => previewed,
            _ => common::s(newest, "sk"),
        };
        if let Some(before) = seen.get(&key) {
            if timestamp::compare(&sk, before) == Ordering::Less {
                tally.regressed += 1;
            }
        }
        if seen
            .get(&key)
            .is_none_or(|before| timestamp::is_newer(&sk, before))
        {
            seen.insert(key.clone(), sk.clone());
        }
        match timestamp::compare(&sk, &expected.sk) {
            Ordering::Less => tally.behind += 1,
            Ordering::Greater => tally.ahead += 1,
            Ordering::Equal if common::s(newest, "message") != expected.text => {
                tally.wrong_text += 1
            }
            _ => {}
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
}

/// What a chat app does: new messages (some out of order), and about one in twenty each an edit
/// of an earlier message, a delete of one, and a message at exactly the instant of another
/// conversation's message that shares an owner (two conversations of one user at the same
/// instant). Per message key, records come in stream order, as DynamoDB Streams guarantees.
pub fn chat(groups: &[Group], count: usize, first_sequence: u64, rng: &mut fastrand::Rng) -> Chat {
    let mut chat = Chat {
        sent: Vec::with_capacity(count),
        table: BTreeMap::new(),
        edits: 0,
        removes: 0,
        collisions: 0,
    };
    let mut used = std::collections::HashSet::new();
    for i in 0..count {
        let sequence = format!("{:021}", first_sequence + i as u64);
        let text = format!("{TEXT_MARKER}{}-{}", uuid::Uuid::new_v4().simple(), i);
        let live: Vec<(String, String)> = chat
            .table
            .iter()
            .flat_map(|(g, m)| m.keys().map(move |sk| (g.clone(), sk.clone())))
            .collect();
        let roll = rng.u8(0..20);
        if roll < 2 && !live.is_empty() {
            let (group, sk) = live[rng.usize(0..live.len())].clone();
            let sent = if roll == 0 {
                chat.removes += 1;
                chat.table.get_mut(&group).expect("live").remove(&sk);
                Sent {
                    record: common::remove_record(&group, &sk, &sequence),
                    group,
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
                    record: common::edit_record(&group, &sk, &text, &sequence),
                    group,
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
                            .is_some_and(|m| m.keys().any(|k| timestamp::compare(k, sk).is_eq()))
                })
            })
            .flatten()
            .map(|(_, sk)| sk.clone());
        let created_at = match collide {
            Some(sk) => {
                chat.collisions += 1;
                sk
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
                timestamp(seconds, rng.u32(0..1_000_000), rng.usize(..))
            }
        };
        chat.table
            .entry(group.uuid.clone())
            .or_default()
            .insert(created_at.clone(), text.clone());
        chat.sent.push(Sent {
            record: common::message_record(&group.uuid, &created_at, &text, &sequence),
            group: group.uuid.clone(),
            created_at,
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
            let created_at = timestamp(seconds, rng.u32(0..1_000_000), rng.usize(..));
            let sequence = format!("{:021}", first_sequence + i as u64);
            let text = format!("{TEXT_MARKER}{}-{}", uuid::Uuid::new_v4().simple(), i);
            let record = common::message_record(&group.uuid, &created_at, &text, &sequence);
            Sent {
                group: group.uuid.clone(),
                created_at,
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
    /// The newest timestamp each row was seen at.
    pub seen: HashMap<(String, String), String>,
    /// The checks made after each invocation, added up.
    pub during: Tally,
    /// Rows whose group had an edit or a REMOVE in a batch that failed part-way: until the end of
    /// the delivery the model (acknowledged records, in order) and the handler (the whole batch
    /// of a group that succeeded) may differ for them, so only loss and doubling are checked.
    pub split: std::collections::HashSet<(String, String)>,
}

impl Ledger {
    pub fn new(model: Model) -> Self {
        Self {
            model,
            ..Self::default()
        }
    }

    /// Checks every row of the model now.
    pub async fn check_all(&mut self, client: &Client, table: &str) -> Tally {
        check(client, table, &self.model, None, &mut self.seen).await
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
/// retries without limit, as `MaximumRetryAttempts` -1), checking after every invocation that each
/// record it acknowledged is applied and that no row regressed or doubled. The model learns each
/// message when it is acknowledged. Panics if a batch keeps failing past `max_invocations`.
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
        let answer = match messaging_stream::handler::process(app, &payload).await {
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
        let acked: Vec<&Sent> = batch[..acknowledged]
            .iter()
            .map(|p| by_sequence[&p.sequence_number])
            .collect();
        ledger.model.apply_batch(&acked);
        // A REMOVE moves rows back (to the group's newest remaining message): no regression. And
        // when a batch fails part-way, the handler has applied the whole batch for the groups that
        // succeeded while only the records before the failure point are acknowledged: the handler's
        // result for a group with an edit or a REMOVE in it (a fallback to the table's newest
        // message, or a newer message in the batch's tail; a text from the tail) and the model's
        // may then differ until the group's last record is delivered. For those groups,
        // mid-delivery, text, "behind" and "regressed" are not defects (`Ledger::split`); the end
        // check is exact. Every other group keeps every check.
        let mut lenient: Vec<(String, String)> = Vec::new();
        let failed_part_way = acknowledged < batch.len();
        for pending in &batch {
            let s = by_sequence[&pending.sequence_number];
            let change = s.remove || s.record["eventName"] == "MODIFY";
            for key in ledger.model.keys_of(&s.group) {
                if s.remove {
                    ledger.seen.remove(&key);
                    lenient.push(key.clone());
                }
                if change && failed_part_way {
                    ledger.split.insert(key);
                }
            }
        }
        lenient.extend(ledger.split.iter().cloned());
        for key in &lenient {
            ledger.seen.remove(key);
        }
        // Check every group of the batch: acknowledged ones must be applied, none regressed.
        let mut keys: Vec<(String, String)> = batch
            .iter()
            .flat_map(|p| ledger.model.keys_of(&by_sequence[&p.sequence_number].group))
            .collect();
        keys.sort();
        keys.dedup();
        // One check per row: a group with two REMOVEs in the batch is named twice above.
        lenient.sort();
        lenient.dedup();
        lenient.retain(|key| keys.contains(key));
        let strict: Vec<(String, String)> = keys
            .iter()
            .filter(|k| !lenient.contains(k))
            .cloned()
            .collect();
        let mut tally = check(
            direct,
            &table,
            &ledger.model,
            Some(&strict),
            &mut ledger.seen,
        )
        .await;
        let mut loose = check(
            direct,
            &table,
            &ledger.model,
            Some(&lenient),
            &mut ledger.seen,
        )
        .await;
        (loose.behind, loose.regressed, loose.wrong_text) = (0, 0, 0);
        tally.add(&loose);
        // Mid-delivery a row may be ahead of what was acknowledged: its group was applied in a
        // batch that failed for another group and will be delivered again.
        tally.ahead = 0;
        ledger.during.add(&tally);
    }
    delivery.batches = sent.len().div_ceil(batch_size);
    delivery
}
