//! The cost table (`--only cost`): read and write capacity per delivered message, Rust against the
//! all-records seed, on the workloads of issue 9.
//!
//! Each side runs each workload once (capacity does not depend on time, so once, at 0 ms) on a
//! table reset to the workload's rows. Two figures per run:
//!
//! - **reported**: what DynamoDB Local answered to `ReturnConsumedCapacity: TOTAL` on every request,
//!   summed (the Rust side's request log, testkit's `RequestLog::consumed`, which asks for it on the
//!   table's requests; the seed's botocore hook in bench/seed_baseline.py).
//! - **AWS rules**: the same requests priced from the item sizes they touch by the rules AWS
//!   documents ([`Ledger`]): a write unit per started KB of each item written or deleted, twice for
//!   an item of a transaction; the index's entry of each such item once more (every row is in the
//!   group index, projection ALL); a Query half a read unit per started 4 KB of the items it
//!   returns (eventually consistent).
//!
//! With the read cache on (`ReadCache=dynamodb`), each group also costs the function one BatchWriteItem
//! deleting `messages#<group>` and `conversations#<owner>` of each owner whose row it wrote: a standard
//! delete of a cache item, priced by AWS's rules at its started KB and at least one unit even when the
//! item is absent (the bench's cache holds nothing: no reader fills it). The cache backend does not ask
//! for its consumed capacity, so those units are AWS's rules only, outside "reproduced".
//!
//! DynamoDB Local prices standard requests that way, but not transactions: it counts four units per
//! started KB, and an item only if no other item of the same transaction (and table or index)
//! counted the same number of units. [`Ledger`] also prices every request that way
//! (`local_rules`), and the table says whether that reproduces what DynamoDB Local reported: it is
//! the check that the item sizes and requests priced here are the ones the run made.

use crate::baseline::Variant;
use crate::cells::{handle_batch, since, Side};
use crate::report::Runner;
use crate::table;
use crate::workloads::Workload;
use anyhow::{ensure, Context};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ReturnConsumedCapacity, ScalarAttributeType, TransactWriteItem,
};
use ddb::commands::schema;
use messaging_stream::cache::MAX_BATCH_WRITE;
use messaging_stream::model::{GROUP_ATTR, MESSAGE_ATTR};
use messaging_stream::plan::{Item, MAX_ACTIONS_PER_TRANSACTION};
use messaging_stream::size::item_size;
use messaging_stream::{App, Config};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use testkit::local;

/// Capacity units, the writes split into the table's, the group index's and the read cache's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Units {
    pub read: f64,
    pub write_table: f64,
    pub write_index: f64,
    /// The cache's invalidations (deletes on the cache table), when the cache is on.
    pub write_cache: f64,
}

impl Units {
    pub fn write(&self) -> f64 {
        self.write_table + self.write_index + self.write_cache
    }

    /// `12 (8 + 4)`, or `15 (8 + 4 + 3 cache)` with the cache's deletes.
    fn write_parts(&self) -> String {
        let cache = if self.write_cache > 0.0 {
            format!(" + {} cache", units(self.write_cache))
        } else {
            String::new()
        };
        format!(
            "{} ({} + {}{cache})",
            units(self.write()),
            units(self.write_table),
            units(self.write_index)
        )
    }
}

/// Write units of one item of `bytes`: one per started KB, at least one.
fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

/// Prices requests from the sizes of the items they touch, by AWS's rules and by DynamoDB Local's.
#[derive(Debug, Default)]
pub struct Ledger {
    pub aws: Units,
    pub local: Units,
}

impl Ledger {
    /// A Query of the group index (eventually consistent) returning items of these sizes: half a
    /// unit per started 4 KB of their total, at least half a unit.
    fn query(&mut self, sizes: impl IntoIterator<Item = usize>) {
        let bytes: usize = sizes.into_iter().sum();
        let units = 0.5 * bytes.div_ceil(4096).max(1) as f64;
        self.aws.read += units;
        self.local.read += units;
    }

    /// A standard DeleteItem or PutItem of an item of `bytes` (a new key for a Put), which is in
    /// the index: the same units again for the index entry deleted or written.
    fn standard_write(&mut self, bytes: usize) {
        for units in [&mut self.aws, &mut self.local] {
            units.write_table += write_units(bytes);
            units.write_index += write_units(bytes);
        }
    }

    /// The cache's invalidation of `keys` items that are not in the cache table: one unit each, the
    /// least a delete costs (AWS's rules only: the cache backend asks for no consumed capacity).
    fn cache_deletes_of_absent_items(&mut self, keys: usize) {
        self.aws.write_cache += keys as f64 * write_units(0);
    }

    /// One TransactWriteItems deleting items of `deleted` sizes and putting new items of `put`
    /// sizes, every one of them in the index.
    fn transaction(&mut self, deleted: &[usize], put: &[usize]) {
        let items: Vec<f64> = deleted.iter().chain(put).map(|&b| write_units(b)).collect();
        // AWS: two underlying writes (prepare, commit) of every item of the transaction; the
        // index's entry once, as any write to the table updates its index.
        self.aws.write_table += 2.0 * items.iter().sum::<f64>();
        self.aws.write_index += items.iter().sum::<f64>();
        // DynamoDB Local 1.25 (measured, see docs/PERFORMANCE.md): four units per started KB, and
        // items of the same units counted once, for the table and for the index alike.
        let distinct: BTreeSet<u64> = items.iter().map(|&u| u as u64).collect();
        let local = 4.0 * distinct.iter().sum::<u64>() as f64;
        self.local.write_table += local;
        self.local.write_index += local;
    }
}

/// The read cache of the workloads that turn it on (the template's `${AppName}-cache-${Env}`).
const CACHE_TABLE: &str = "cruddur-cache-bench";

/// The table the probe writes to: no index, so each figure is the table's alone.
const PROBE_TABLE: &str = "bench-capacity-probe";

/// Lengths of the `message` of the new items each probe transaction puts.
const PROBE_CASES: &[&[usize]] = &[
    &[100],
    &[100, 100],
    &[400, 400, 400],
    &[2000, 100],
    &[2000, 2000],
    &[4096],
    &[4096, 4096],
    &[4096, 100],
    &[2000, 2000, 100, 4096],
    &[100, 1100, 2100, 3100],
];

/// One TransactWriteItems of the probe: what DynamoDB Local reported, and both rules' prices.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub item_bytes: Vec<usize>,
    pub reported: f64,
    pub local_rules: f64,
    pub aws_rules: f64,
}

/// How DynamoDB Local counts a transaction's write units: one TransactWriteItems of new items per
/// case of [`PROBE_CASES`] on a table without an index, straight to the server (`client`).
pub async fn probe(client: &aws_sdk_dynamodb::Client) -> anyhow::Result<Vec<Probe>> {
    let key = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .expect("name and type are set")
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("name and type are set")
    };
    let created = client
        .create_table()
        .table_name(PROBE_TABLE)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    if let Err(error) = created {
        ensure!(
            error
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()),
            "CreateTable {PROBE_TABLE}: {}",
            DisplayErrorContext(error)
        );
    }
    let mut probes = Vec::new();
    for (case, texts) in PROBE_CASES.iter().enumerate() {
        let items: Vec<Item> = texts
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                Item::from([
                    ("pk".to_owned(), AttributeValue::S(format!("Q{case}-{i}"))),
                    ("sk".to_owned(), AttributeValue::S("s".into())),
                    (MESSAGE_ATTR.to_owned(), AttributeValue::S("x".repeat(len))),
                ])
            })
            .collect();
        let actions = items.iter().map(|item| {
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(PROBE_TABLE)
                        .set_item(Some(item.clone()))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .expect("table and item are set"),
                )
                .build()
        });
        let output = client
            .transact_write_items()
            .set_transact_items(Some(actions.collect()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("TransactWriteItems: {}", DisplayErrorContext(e)))?;
        let reported = output
            .consumed_capacity()
            .iter()
            .map(|c| {
                c.write_capacity_units()
                    .or(c.capacity_units())
                    .unwrap_or(0.0)
            })
            .sum();
        let item_bytes: Vec<usize> = items.iter().map(item_size).collect();
        let mut ledger = Ledger::default();
        ledger.transaction(&[], &item_bytes);
        probes.push(Probe {
            item_bytes,
            reported,
            local_rules: ledger.local.write_table,
            aws_rules: ledger.aws.write_table,
        });
    }
    client
        .delete_table()
        .table_name(PROBE_TABLE)
        .send()
        .await
        .ok();
    Ok(probes)
}

/// One side's cost of one workload.
#[derive(Debug, Clone, Serialize)]
pub struct CostCell {
    pub workload: &'static str,
    pub title: &'static str,
    pub records: usize,
    pub groups: usize,
    pub rows: usize,
    /// Bytes of each message's text.
    pub text_bytes: usize,
    /// The Rust side's PREVIEW_MAX_BYTES (the seed has none).
    pub preview_max_bytes: Option<usize>,
    /// The Rust side ran with the read cache on (the seed has none).
    pub read_cache: bool,
    pub runner: Runner,
    /// Requests by operation (the proxy's count, checked against the side's own).
    pub requests: BTreeMap<String, u64>,
    /// Summed from the responses' ConsumedCapacity, as DynamoDB Local reported it.
    pub reported_read: f64,
    pub reported_write: f64,
    /// Responses that carried no ConsumedCapacity.
    pub unreported: u64,
    /// The same requests priced from item sizes by AWS's documented rules.
    pub aws_rules: Units,
    /// The same requests priced from item sizes by DynamoDB Local's counting.
    pub local_rules: Units,
    /// Bytes of one row after the run (the largest), as DynamoDB counts an item.
    pub row_bytes_after: usize,
}

impl CostCell {
    /// Whether pricing the requests by DynamoDB Local's counting gives exactly what it reported.
    pub fn local_reproduced(&self) -> bool {
        (self.local_rules.read - self.reported_read).abs() < 1e-6
            && (self.local_rules.write_table + self.local_rules.write_index - self.reported_write)
                .abs()
                < 1e-6
            && self.unreported == 0
    }

    pub fn per_message(&self, units: f64) -> f64 {
        units / self.records as f64
    }
}

fn group_of(item: &Item) -> Option<&str> {
    item.get(GROUP_ATTR)
        .and_then(|g| g.as_s().ok())
        .map(String::as_str)
}

fn pk_of(item: &Item) -> &str {
    item.get("pk")
        .and_then(|v| v.as_s().ok())
        .map_or("", String::as_str)
}

/// Group rows by group, each group's rows in pk order.
fn by_group(items: &[Item]) -> BTreeMap<String, Vec<Item>> {
    let mut groups: BTreeMap<String, Vec<Item>> = BTreeMap::new();
    for item in items {
        if let Some(group) = group_of(item) {
            groups
                .entry(group.to_owned())
                .or_default()
                .push(item.clone());
        }
    }
    for rows in groups.values_mut() {
        rows.sort_by(|a, b| pk_of(a).cmp(pk_of(b)));
    }
    groups
}

fn cell(w: &Workload, runner: Runner, requests: BTreeMap<String, u64>) -> CostCell {
    CostCell {
        workload: w.name,
        title: w.title,
        records: w.records,
        groups: w.groups,
        rows: w.rows_total(),
        text_bytes: w.text_bytes,
        preview_max_bytes: w.preview_max_bytes,
        read_cache: w.read_cache,
        runner,
        requests,
        reported_read: 0.0,
        reported_write: 0.0,
        unreported: 0,
        aws_rules: Units::default(),
        local_rules: Units::default(),
        row_bytes_after: 0,
    }
}

fn largest_row(items: &[Item]) -> usize {
    items
        .iter()
        .filter(|i| group_of(i).is_some())
        .map(item_size)
        .max()
        .unwrap_or(0)
}

/// The Rust handler on `w` (its PREVIEW_MAX_BYTES), once.
pub async fn rust_cost(
    side: &mut Side,
    direct: &aws_sdk_dynamodb::Client,
    w: &Workload,
) -> anyhow::Result<CostCell> {
    table::reset(direct, &w.rows).await?;
    if w.read_cache {
        // Created once; nothing fills it, so it is empty before every run (checked).
        schema::create_cache_table(direct, CACHE_TABLE).await?;
        let held = direct
            .scan()
            .table_name(CACHE_TABLE)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("Scan {CACHE_TABLE}: {}", DisplayErrorContext(e)))?;
        ensure!(
            held.count() == 0,
            "{CACHE_TABLE} holds items: the pricing assumes none"
        );
    }
    let config = Config {
        preview_max_bytes: w.preview_max_bytes,
        cache_table_name: w.read_cache.then(|| CACHE_TABLE.to_owned()),
        ..local::config_for(&side.proxy.endpoint_url(), table::TABLE)
    };
    // As the Lambda wires it (`App::from_config`): with CACHE_TABLE_NAME, the cache shares the client.
    let app = App::on_client(side.client.clone(), config);
    side.log.reset();
    let before = side.proxy.counts().operations;
    let (response, summary) = handle_batch(&app, &w.event).await?;
    let requests = since(&side.proxy, &before);
    ensure!(
        response.batch_item_failures.is_empty()
            && summary.counts.failed_groups == 0
            && summary.counts.groups == w.groups
            && summary.counts.rows_moved == w.rows_total()
            && summary.counts.rows_nudged == 0
            && summary.counts.condition_rereads == 0
            && summary.counts.conflict_retries == 0,
        "{}: expected {} groups and {} rows moved, nothing else; got {summary:?}",
        w.name,
        w.groups,
        w.rows_total()
    );
    let truncated = if w.preview_max_bytes.is_some_and(|cap| cap < w.text_bytes) {
        w.rows_total()
    } else {
        0
    };
    ensure!(
        summary.counts.rows_truncated == truncated,
        "{}: expected {truncated} rows truncated, got {summary:?}",
        w.name
    );
    ensure!(
        requests == side.log.counts(),
        "{}: the proxy counted {requests:?}, the SDK {:?}",
        w.name,
        side.log.counts()
    );
    let consumed = side.log.consumed();

    // Priced from the rows before (the workload's) and after (the table's): per group, one Query
    // of its rows, then its moves (Delete of the old row, Put of the new) 50 to a transaction.
    let after_items = table::items(direct).await?;
    let before_rows = by_group(&w.rows);
    let after_rows = by_group(&after_items);
    let mut ledger = Ledger::default();
    let mut transactions = 0;
    let mut invalidations = 0;
    for (group, old) in &before_rows {
        let new = after_rows
            .get(group)
            .with_context(|| format!("{}: group {group} has no rows after the run", w.name))?;
        ensure!(
            new.len() == old.len(),
            "{}: group {group} had {} rows, has {}",
            w.name,
            old.len(),
            new.len()
        );
        ledger.query(old.iter().map(item_size));
        let moves_per_transaction = MAX_ACTIONS_PER_TRANSACTION / 2;
        for (old, new) in old
            .chunks(moves_per_transaction)
            .zip(new.chunks(moves_per_transaction))
        {
            let deleted: Vec<usize> = old.iter().map(item_size).collect();
            let put: Vec<usize> = new.iter().map(item_size).collect();
            ledger.transaction(&deleted, &put);
            transactions += 1;
        }
        if w.read_cache {
            // messages#<group> and conversations#<owner> of every owner (each row moved), 25 a request.
            let keys = 1 + old.len();
            ledger.cache_deletes_of_absent_items(keys);
            invalidations += keys.div_ceil(MAX_BATCH_WRITE) as u64;
        }
    }
    let mut modelled = BTreeMap::from([
        ("Query".to_owned(), before_rows.len() as u64),
        ("TransactWriteItems".to_owned(), transactions),
    ]);
    if invalidations > 0 {
        modelled.insert("BatchWriteItem".to_owned(), invalidations);
    }
    ensure!(
        requests == modelled,
        "{}: the Rust side sent {requests:?}; the pricing assumes {modelled:?}",
        w.name
    );
    let mut cell = cell(w, Runner::Rust, requests);
    cell.reported_read = consumed.read_units;
    cell.reported_write = consumed.write_units;
    cell.unreported = consumed.unreported;
    cell.aws_rules = ledger.aws;
    cell.local_rules = ledger.local;
    cell.row_bytes_after = largest_row(&after_items);
    print_cell(&cell);
    Ok(cell)
}

/// The seed, once per record, on `w` (stored at `event_file`), once.
pub async fn seed_cost(
    side: &mut Side,
    direct: &aws_sdk_dynamodb::Client,
    w: &Workload,
    event_file: &Path,
) -> anyhow::Result<CostCell> {
    table::reset(direct, &w.rows).await?;
    let before = side.proxy.counts().operations;
    let run = side.worker.run(event_file, Variant::All).await?;
    let requests = since(&side.proxy, &before);
    ensure!(
        requests == run.requests,
        "{}: the proxy counted {requests:?}, botocore {:?}",
        w.name,
        run.requests
    );
    let capacity = run
        .capacity
        .context("the seed worker gave no capacity (an older bench/seed_baseline.py?)")?;

    // Priced by replaying what the seed does for each record, in order: a Query of the group's
    // rows, then for each row a DeleteItem of it and a PutItem of it at the message's key and text.
    let mut rows = by_group(&w.rows);
    let mut ledger = Ledger::default();
    let mut modelled: BTreeMap<String, u64> = BTreeMap::new();
    let records = w.event["Records"].as_array().cloned().unwrap_or_default();
    for record in &records {
        let image = &record["dynamodb"]["NewImage"];
        let text = |name: &str| image[name]["S"].as_str().map(str::to_owned);
        let (Some(pk), Some(sk), Some(message)) = (text("pk"), text("sk"), text("message")) else {
            anyhow::bail!("{}: a record without pk, sk or message", w.name);
        };
        let group = pk.trim_start_matches("MSG#");
        let current = rows.entry(group.to_owned()).or_default();
        ledger.query(current.iter().map(item_size));
        *modelled.entry("Query".into()).or_default() += 1;
        for row in current.iter_mut() {
            ledger.standard_write(item_size(row));
            row.insert("sk".into(), AttributeValue::S(sk.clone()));
            row.insert(MESSAGE_ATTR.into(), AttributeValue::S(message.clone()));
            ledger.standard_write(item_size(row));
            *modelled.entry("DeleteItem".into()).or_default() += 1;
            *modelled.entry("PutItem".into()).or_default() += 1;
        }
    }
    ensure!(
        requests == modelled,
        "{}: the seed sent {requests:?}; the pricing assumes {modelled:?}",
        w.name
    );
    // The replay must end where the seed did: the same row sizes in every group.
    let after_items = table::items(direct).await?;
    let sizes = |groups: &BTreeMap<String, Vec<Item>>| -> BTreeMap<String, Vec<usize>> {
        groups
            .iter()
            .map(|(g, rows)| {
                let mut sizes: Vec<usize> = rows.iter().map(item_size).collect();
                sizes.sort_unstable();
                (g.clone(), sizes)
            })
            .collect()
    };
    ensure!(
        sizes(&by_group(&after_items)) == sizes(&rows),
        "{}: the seed's rows after the run are not the ones priced",
        w.name
    );
    let mut cell = cell(w, Runner::SeedAll, requests);
    cell.preview_max_bytes = None;
    cell.read_cache = false;
    cell.reported_read = capacity.read_units;
    cell.reported_write = capacity.write_units;
    cell.unreported = capacity.unreported;
    cell.aws_rules = ledger.aws;
    cell.local_rules = ledger.local;
    cell.row_bytes_after = largest_row(&after_items);
    print_cell(&cell);
    Ok(cell)
}

/// A capacity figure: whole numbers as such, else up to two decimals.
pub fn units(u: f64) -> String {
    if (u - u.round()).abs() < 1e-9 {
        format!("{u:.0}")
    } else {
        let s = format!("{u:.2}");
        s.trim_end_matches('0').to_owned()
    }
}

fn print_cell(c: &CostCell) {
    println!(
        "  {:<17} {:<18} {:>6} requests  AWS rules: {} RCU, {} WCU (table + index{}), per message {} RCU {} WCU; DynamoDB Local reported {} RCU, {} WCU{}",
        c.workload,
        c.runner.title(),
        c.requests.values().sum::<u64>(),
        units(c.aws_rules.read),
        c.aws_rules.write_parts(),
        if c.aws_rules.write_cache > 0.0 {
            " + cache"
        } else {
            ""
        },
        units(c.per_message(c.aws_rules.read)),
        units(c.per_message(c.aws_rules.write())),
        units(c.reported_read),
        units(c.reported_write),
        if c.local_reproduced() {
            " (reproduced from item sizes)"
        } else {
            " (NOT reproduced from item sizes)"
        }
    );
}

pub const BEGIN: &str = "<!-- BEGIN make bench cost: generated, do not edit by hand -->";
pub const END: &str = "<!-- END make bench cost -->";

/// The generated cost section of docs/PERFORMANCE.md.
pub fn markdown(
    cells: &[CostCell],
    probes: &[Probe],
    date: &str,
    command: &str,
    dynamodb_local: &str,
) -> String {
    use std::fmt::Write as _;
    let mut md = String::new();
    let _ = writeln!(md, "{BEGIN}\n");
    let _ = writeln!(
        md,
        "Run of {date}: `{command}`, on {dynamodb_local}. Each side ran each workload once, at 0 ms \
         added RTT, on a table reset to the workload's rows; the seed is the all-records variant \
         (called once per record). Units are priced from the item sizes each request touched by \
         AWS's rules (above); \"DynamoDB Local reported\" is the sum of its ConsumedCapacity \
         (TOTAL) answers, and \"reproduced\" says whether pricing the same requests by DynamoDB \
         Local's own counting gives exactly that sum.\n"
    );
    let _ = writeln!(
        md,
        "| workload | side | requests | row after | RCU | WCU (table + index [+ cache]) | RCU / message | WCU / message | DynamoDB Local reported: RCU, WCU | reproduced |\n|---|---|---|---:|---:|---:|---:|---:|---|---|"
    );
    for c in cells {
        let side = c.runner.title();
        let _ = writeln!(
            md,
            "| {} | {side} | {} | {} B | {} | {} | {} | {} | {}, {} | {} |",
            c.title,
            crate::report::requests(&c.requests),
            c.row_bytes_after,
            units(c.aws_rules.read),
            c.aws_rules.write_parts(),
            units(c.per_message(c.aws_rules.read)),
            units(c.per_message(c.aws_rules.write())),
            units(c.reported_read),
            units(c.reported_write),
            if c.local_reproduced() {
                "yes"
            } else {
                "**no**"
            }
        );
    }
    let _ = writeln!(md, "\n**Per delivered message (AWS rules), who wins:**\n");
    let _ = writeln!(
        md,
        "| workload | Rust WCU | seed WCU | seed ÷ Rust | Rust RCU | seed RCU | fewer write units |\n|---|---:|---:|---:|---:|---:|---|"
    );
    let workloads: Vec<&'static str> = {
        let mut seen = Vec::new();
        for c in cells {
            if !seen.contains(&c.workload) {
                seen.push(c.workload);
            }
        }
        seen
    };
    for name in workloads {
        let find = |runner| {
            cells
                .iter()
                .find(|c| c.workload == name && c.runner == runner)
        };
        let (Some(rust), Some(seed)) = (find(Runner::Rust), find(Runner::SeedAll)) else {
            continue;
        };
        let (rw, sw) = (
            rust.per_message(rust.aws_rules.write()),
            seed.per_message(seed.aws_rules.write()),
        );
        let winner = if (rw - sw).abs() < 1e-9 {
            "tie"
        } else if rw < sw {
            "Rust"
        } else {
            "seed"
        };
        let title = if rust.preview_max_bytes.is_some() || rust.read_cache {
            format!("{} (Rust's setting; the seed has none)", rust.title)
        } else {
            rust.title.to_owned()
        };
        let _ = writeln!(
            md,
            "| {title} | {} | {} | {:.2}x | {} | {} | {winner} |",
            units(rw),
            units(sw),
            sw / rw,
            units(rust.per_message(rust.aws_rules.read)),
            units(seed.per_message(seed.aws_rules.read)),
        );
    }
    if !probes.is_empty() {
        let _ = writeln!(
            md,
            "\n**How DynamoDB Local counted transactions in this run** (the probe: one \
             TransactWriteItems of new items per line, on a table without an index, \
             `ReturnConsumedCapacity: TOTAL`):\n"
        );
        let _ = writeln!(
            md,
            "| items, bytes | DynamoDB Local reported | DynamoDB Local's rule: 4 × started KB, equal figures once | AWS's rule: 2 × started KB, per item |\n|---|---:|---:|---:|"
        );
        for p in probes {
            let bytes: Vec<String> = p.item_bytes.iter().map(usize::to_string).collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                bytes.join(", "),
                units(p.reported),
                units(p.local_rules),
                units(p.aws_rules)
            );
        }
    }
    let _ = writeln!(md, "\n{END}");
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_units_start_at_one_and_count_started_kilobytes() {
        assert_eq!(write_units(0), 1.0);
        assert_eq!(write_units(1024), 1.0);
        assert_eq!(write_units(1025), 2.0);
        assert_eq!(write_units(4300), 5.0);
    }

    #[test]
    fn aws_rules_double_every_transaction_item_and_count_the_index_once() {
        let mut ledger = Ledger::default();
        // One move of a 200-byte row to a 4,300-byte one.
        ledger.transaction(&[200], &[4300]);
        assert_eq!(ledger.aws.write_table, 2.0 * (1.0 + 5.0));
        assert_eq!(ledger.aws.write_index, 1.0 + 5.0);
        let mut standard = Ledger::default();
        standard.standard_write(200);
        standard.standard_write(4300);
        assert_eq!(standard.aws.write_table, 6.0);
        assert_eq!(standard.aws.write_index, 6.0);
        assert_eq!(standard.aws, standard.local);
    }

    /// What DynamoDB Local 1.25 reported for TransactWriteItems putting new items with a `message`
    /// of these lengths (each item 18 bytes more: `pk` "Qn", `sk` "s", `g` "grp", the name
    /// `message`), on a table without an index (measured by hand, see docs/PERFORMANCE.md): four
    /// units per started KB, items of equal units counted once.
    #[test]
    fn local_rules_reproduce_dynamodb_local_transactions() {
        for (texts, reported) in [
            (vec![100], 4.0),
            (vec![100, 100], 4.0),
            (vec![400, 400, 400], 4.0),
            (vec![2000, 100], 12.0),
            (vec![2000, 2000], 8.0),
            (vec![4096, 4096], 20.0),
            (vec![4096, 100], 24.0),
            (vec![2000, 2000, 100, 4096], 32.0),
            (vec![100, 1100, 2100, 3100], 40.0),
        ] {
            let mut ledger = Ledger::default();
            let sizes: Vec<usize> = texts.iter().map(|t| t + 18).collect();
            ledger.transaction(&[], &sizes);
            assert_eq!(ledger.local.write_table, reported, "{texts:?}");
        }
    }

    /// Issue 16: a message to a 2-row group with the cache on deletes 3 absent cache items, 1 unit each:
    /// 15 write units where the cache off costs 12 (rows of ~270 bytes).
    #[test]
    fn the_cache_adds_a_unit_per_invalidated_key_and_only_by_aws_rules() {
        let mut ledger = Ledger::default();
        ledger.transaction(&[270, 270], &[270, 270]);
        assert_eq!(ledger.aws.write(), 12.0);
        ledger.cache_deletes_of_absent_items(1 + 2);
        assert_eq!(ledger.aws.write(), 15.0);
        assert_eq!(ledger.aws.write_parts(), "15 (8 + 4 + 3 cache)");
        assert_eq!(ledger.local.write_cache, 0.0, "DynamoDB Local is not asked");
    }

    #[test]
    fn a_query_costs_half_a_unit_per_started_4_kb_of_its_items() {
        let mut ledger = Ledger::default();
        ledger.query([]);
        ledger.query([200, 200]);
        ledger.query(vec![250; 200]); // 50,000 bytes: 13 started 4 KB
        assert_eq!(ledger.aws.read, 0.5 + 0.5 + 6.5);
    }
}
