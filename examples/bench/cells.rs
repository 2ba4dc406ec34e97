//! One measured cell: a workload at one RTT, run several times by one side.
//!
//! A [`Side`] is one RTT's pair of clients, both through the same delay proxy: the Rust handler's
//! app (in this process) and the seed's Python worker. Every run starts from the workload's rows
//! (table.rs); its requests are the proxy's count, checked against the side's own counter; a Rust
//! run must also have done the batch's work, or the bench stops.

use crate::baseline::{Python, Variant, Worker};
use crate::report::{self, Cell, Runner};
use crate::workloads::{self, Workload};
use crate::{table, Args};
use anyhow::{bail, ensure};
use aws_lambda_events::streams::DynamoDbEventResponse;
use messaging_stream::event;
use messaging_stream::handler::{self, Summary};
use messaging_stream::App;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;
use testkit::fault_proxy::Proxy;
use testkit::local;
use testkit::request_log::RequestLog;

/// One latency's clients: the Rust app and the Python worker, both through the same proxy.
pub struct Side {
    pub proxy: Proxy,
    app: App,
    /// The Rust app's client (the cost cells build apps of their own config on it) and its log.
    pub client: aws_sdk_dynamodb::Client,
    pub log: RequestLog,
    pub worker: Worker,
}

/// The Rust app (the function's default config, this table) and a Python worker, both on `proxy`.
pub async fn side(proxy: Proxy, python: &Python) -> anyhow::Result<Side> {
    let config = local::config_for(&proxy.endpoint_url(), table::TABLE);
    // Its requests ask for their consumed capacity, as the cost cells report it (cost.rs).
    let log = RequestLog::new().counting_capacity_of(table::TABLE);
    let client = local::client_for(&config, &log).await;
    let app = App::on_client(client.clone(), config);
    let worker = python.worker(&proxy.endpoint_url()).await?;
    Ok(Side {
        proxy,
        app,
        client,
        log,
        worker,
    })
}

/// DynamoDB Local is a JVM: its first tens of thousands of requests run slower while its code is
/// compiled (a 20-group batch took twice as long in the first minute as later). Both sides' request
/// kinds go through it for `seconds` before anything is measured; prints the 20-group batch's time
/// per round, so a reader can see it settle.
pub async fn warm_up_server(
    side: &mut Side,
    direct: &aws_sdk_dynamodb::Client,
    events_dir: &Path,
    seconds: f64,
) -> anyhow::Result<()> {
    println!("  warming up DynamoDB Local for {seconds:.0} s (untimed) ...");
    let all = workloads::all();
    let find = |name: &str| all.iter().find(|w| w.name == name).expect("a workload");
    let (groups20, groups500, groupchat) = (find("groups20"), find("groups500"), find("groupchat"));
    let file = events_dir.join("warm-up-groups20.json");
    std::fs::write(&file, groups20.event.to_string())?;
    let started = Instant::now();
    let mut rounds = Vec::new();
    while started.elapsed().as_secs_f64() < seconds {
        for w in [groups500, groupchat] {
            table::reset(direct, &w.rows).await?;
            rust_run(side, w).await?;
        }
        let mut best = f64::MAX;
        for _ in 0..3 {
            table::reset(direct, &groups20.rows).await?;
            best = best.min(rust_run(side, groups20).await?.0);
        }
        rounds.push(format!("{:.0}", best * 1000.0));
        table::reset(direct, &groups20.rows).await?;
        seed_run(side, &file, Variant::All).await?;
    }
    println!(
        "  20-group batch, best of 3 per round, ms: {}",
        rounds.join(" ")
    );
    Ok(())
}

/// Requests the proxy saw since `before`, by operation.
pub fn since(proxy: &Proxy, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    proxy
        .counts()
        .operations
        .into_iter()
        .map(|(op, n)| {
            let n = n - before.get(&op).copied().unwrap_or(0);
            (op, n)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The handler on one event's JSON, as `ddb replay` runs it: the JSON adapter, then the one entry
/// with no deadline. Timed runs time both.
pub async fn handle_batch(
    app: &App,
    payload: &serde_json::Value,
) -> anyhow::Result<(DynamoDbEventResponse, Summary)> {
    let records = event::parse_event(payload)?;
    Ok(handler::handle(app, records, None).await?)
}

/// One timed run of the Rust handler: wall time, requests (proxy), and the handler's summary.
pub async fn rust_run(
    side: &mut Side,
    w: &Workload,
) -> anyhow::Result<(f64, BTreeMap<String, u64>, Summary)> {
    side.log.reset();
    let before = side.proxy.counts().operations;
    let t = Instant::now();
    let (response, summary) = handle_batch(&side.app, &w.event).await?;
    let seconds = t.elapsed().as_secs_f64();
    let requests = since(&side.proxy, &before);
    ensure!(
        response.batch_item_failures.is_empty() && summary.counts.failed_groups == 0,
        "{}: the handler failed groups: {summary:?}",
        w.name
    );
    ensure!(
        requests == side.log.counts(),
        "{}: the proxy counted {requests:?}, the SDK {:?}",
        w.name,
        side.log.counts()
    );
    Ok((seconds, requests, summary))
}

pub async fn rust_cell(
    side: &mut Side,
    direct: &aws_sdk_dynamodb::Client,
    w: &Workload,
    latency_ms: u64,
    repeats: usize,
) -> anyhow::Result<Cell> {
    let mut cell = Cell {
        workload: w.name,
        latency_ms,
        runner: Runner::Rust,
        runs_s: Vec::new(),
        requests: BTreeMap::new(),
        skipped: None,
    };
    for _ in 0..repeats {
        table::reset(direct, &w.rows).await?;
        if w.replay {
            rust_run(side, w).await?;
        }
        let (seconds, requests, summary) = rust_run(side, w).await?;
        // The figures only mean something if the batch did its work.
        let (moved, current) = if w.replay {
            (0, w.rows_total())
        } else {
            (w.rows_total(), 0)
        };
        ensure!(
            summary.counts.groups == w.groups
                && summary.counts.rows_moved == moved
                && summary.counts.rows_current == current,
            "{}: expected {} groups, {moved} rows moved, {current} current; got {summary:?}",
            w.name,
            w.groups
        );
        same_requests(&mut cell, requests)?;
        cell.runs_s.push(seconds);
    }
    print_cell(&cell);
    Ok(cell)
}

fn same_requests(cell: &mut Cell, requests: BTreeMap<String, u64>) -> anyhow::Result<()> {
    if cell.runs_s.is_empty() {
        cell.requests = requests;
    } else if cell.requests != requests {
        bail!(
            "{} {:?}: requests changed between runs: {:?} then {requests:?}",
            cell.workload,
            cell.runner,
            cell.requests
        );
    }
    Ok(())
}

pub async fn seed_run(
    side: &mut Side,
    event_file: &Path,
    variant: Variant,
) -> anyhow::Result<(f64, BTreeMap<String, u64>)> {
    let before = side.proxy.counts().operations;
    let run = side.worker.run(event_file, variant).await?;
    let requests = since(&side.proxy, &before);
    ensure!(
        requests == run.requests,
        "the proxy counted {requests:?}, botocore {:?}",
        run.requests
    );
    Ok((run.seconds, requests))
}

#[allow(clippy::too_many_arguments)]
pub async fn seed_cell(
    side: &mut Side,
    direct: &aws_sdk_dynamodb::Client,
    w: &Workload,
    event_file: &Path,
    latency_ms: u64,
    runner: Runner,
    variant: Variant,
    earlier: Option<&Cell>,
    args: &Args,
) -> anyhow::Result<Cell> {
    let mut cell = Cell {
        workload: w.name,
        latency_ms,
        runner,
        runs_s: Vec::new(),
        requests: BTreeMap::new(),
        skipped: None,
    };
    // A run at this latency costs at least the run at a lower one plus the added time per request.
    if let Some(earlier) = earlier {
        let extra_s =
            earlier.total_requests() as f64 * (latency_ms - earlier.latency_ms) as f64 / 1000.0;
        let estimate = earlier.median().unwrap_or(0.0) + extra_s;
        if !args.full && estimate > args.cell_budget_s {
            cell.requests = earlier.requests.clone();
            cell.skipped = Some(format!(
                "not run: ≥ {estimate:.0} s per run ({} requests); `make bench BENCH_FULL=1`",
                earlier.total_requests()
            ));
            print_cell(&cell);
            return Ok(cell);
        }
    }
    let mut target = args.baseline_repeats.max(1);
    while cell.runs_s.len() < target {
        table::reset(direct, &w.rows).await?;
        if w.replay {
            seed_run(side, event_file, variant).await?;
        }
        let (seconds, requests) = seed_run(side, event_file, variant).await?;
        same_requests(&mut cell, requests)?;
        cell.runs_s.push(seconds);
        if cell.runs_s.len() == 1 && !args.full {
            target = target.min(((args.cell_budget_s / seconds).floor() as usize).max(1));
        }
    }
    print_cell(&cell);
    Ok(cell)
}

fn print_cell(cell: &Cell) {
    let figure = match (&cell.skipped, report::stats(&cell.runs_s)) {
        (Some(why), _) => why.clone(),
        (None, Some(s)) => report::spread(&s),
        (None, None) => "no runs".into(),
    };
    println!(
        "  {:<10} {:<22} {:>7} requests  {figure}",
        cell.workload,
        cell.runner.title(),
        cell.total_requests()
    );
}
