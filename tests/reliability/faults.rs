//! Part 1 of the reliability proof: the handler behind the fault proxy, a matrix of every fault kind
//! at several rates. Each cell delivers a stream of messages with the local stream trigger's retry
//! rules until every record is acknowledged, checking after each invocation, then checks every row
//! against the model. Goal per cell: 0 lost, 0 duplicated, 0 regressed, 0 dropped attributes.
//!
//! Quick slice in `make test` (fixed seed, 2 batches per cell at one rate); `make reliability`
//! (RELIABILITY_FULL=1) runs 3 rates and 50 batches per cell.

use crate::support::{self, Tally};
use local::TestTable;
use messaging_stream::config::RetryMode;
use messaging_stream::App;
use std::time::{Duration, Instant};
use testkit::fault_proxy::{Fault, FaultPlan, Proxy};
use testkit::local;
use testkit::request_log::RequestLog;

const BATCH_SIZE: usize = 10;
const GROUPS: usize = 20;

/// One cell's figures.
#[derive(Debug, serde::Serialize)]
struct Cell {
    fault: String,
    /// Of the records: edits, deletes and same-instant messages of two conversations of one owner.
    edits: usize,
    removes: usize,
    collisions: usize,
    /// Messages in the cell's stream.
    records: usize,
    mode: String,
    rate: f64,
    delivery: support::Delivery,
    faults_injected: u64,
    /// Faults injected, by kind.
    faults: std::collections::BTreeMap<&'static str, u64>,
    requests: u64,
    sdk_attempts: u64,
    during: Tally,
    /// Row checks after an invocation that accepted a state only a partly failed batch explains.
    explained: usize,
    end: Tally,
    seconds: f64,
}

fn plans(rate: f64) -> Vec<(String, FaultPlan)> {
    let kinds = Fault::kinds(Duration::from_millis(30));
    let mut plans: Vec<(String, FaultPlan)> = kinds
        .iter()
        .map(|fault| {
            (
                fault.name().to_owned(),
                FaultPlan::none().probability(*fault, rate),
            )
        })
        .collect();
    // Every kind at once, sharing the rate.
    let mixed = kinds.iter().fold(FaultPlan::none(), |plan, fault| {
        plan.probability(*fault, rate / kinds.len() as f64)
    });
    plans.push(("mixed".to_owned(), mixed));
    plans
}

async fn run_cell(
    name: &str,
    rate: f64,
    plan: FaultPlan,
    batches: usize,
    seed: u64,
    mode: RetryMode,
    batch_size: usize,
) -> Cell {
    support::global_capture();
    let started = Instant::now();
    let table = TestTable::with_config(|config| config.retry_mode = mode).await;
    let mut rng = fastrand::Rng::with_seed(seed);
    let (groups, model, items) = support::world("f", GROUPS, &mut rng);
    support::load(&table.client, table.table(), items).await;
    let mut model = model;
    let chat = support::chat(&groups, batches * batch_size, 1_000, &mut rng);
    // The table as it is once all the traffic happened: the stream reports writes after them.
    support::load(&table.client, table.table(), support::seed_messages(&model)).await;
    support::load(&table.client, table.table(), chat.items()).await;
    chat.teach(&mut model);
    let sent = chat.sent.clone();

    let proxy = Proxy::start(local::address(), plan.seed(seed))
        .await
        .expect("start the fault proxy");
    let log = RequestLog::new();
    let client = support::client_via(
        &table.config,
        &proxy.endpoint_url(),
        name,
        Some(backoff()),
        &log,
    )
    .await;
    let app = App::on_client(client, table.config.clone());

    let mut ledger = support::Ledger::new(model);
    let delivery = support::deliver(
        &app,
        &table.client,
        &sent,
        batch_size,
        &mut ledger,
        batches * 200,
    )
    .await;
    let end = ledger.check_all(&table.client, table.table()).await;
    let counts = proxy.counts();
    support::drop_table(&table.client, table.table()).await;
    Cell {
        fault: name.to_owned(),
        records: sent.len(),
        edits: chat.edits,
        removes: chat.removes,
        collisions: chat.collisions,
        mode: format!("{mode:?}").to_lowercase(),
        rate,
        delivery,
        faults_injected: counts.total_faults(),
        faults: counts.faults.clone(),
        requests: counts.requests,
        sdk_attempts: log.total(),
        during: ledger.during,
        explained: ledger.explained,
        end,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// The SDK's initial back-off in these runs (RELIABILITY_BACKOFF_MS, default 10 ms; the SDK's own
/// is 1 s): the retry logic is the production one, only its waits are shorter.
fn backoff() -> Duration {
    Duration::from_millis(
        std::env::var("RELIABILITY_BACKOFF_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10),
    )
}

fn print(cell: &Cell) {
    eprintln!(
        "{:<24} {:<8} rate {:<4} batches {:>3} invocations {:>4} retries {:>3} invocation errors {:>2} faults {:>4} {:>6.1} s end {:?}",
        cell.fault,
        cell.mode,
        cell.rate,
        cell.delivery.batches,
        cell.delivery.invocations,
        cell.delivery.retries,
        cell.delivery.invocation_errors,
        cell.faults_injected,
        cell.seconds,
        cell.end
    );
}

fn assert_clean(cells: &[Cell], batches: usize) {
    assert!(!cells.is_empty(), "no cell ran");
    for cell in cells {
        assert_eq!(cell.delivery.batches, batches, "{cell:?}");
        assert_eq!(cell.delivery.records, cell.records, "{cell:?}");
    }
    for cell in cells {
        assert_eq!(cell.delivery.given_up, 0, "{cell:?}");
        assert!(
            cell.end.is_clean() && cell.during.is_clean(),
            "cell {} at {}: {cell:?}",
            cell.fault,
            cell.rate
        );
        assert!(cell.end.rows >= GROUPS * 2, "{cell:?}");
        assert!(cell.during.rows > 0, "{cell:?}");
        // The faults really happened (a cell that injected nothing proves nothing): a one-kind
        // cell injected its kind, the mixed cell more than one kind.
        assert!(cell.faults_injected > 0, "{cell:?}");
        if cell.fault == "mixed" {
            assert!(cell.faults.len() > 1, "{cell:?}");
        } else {
            assert!(cell.faults.get(cell.fault.as_str()) > Some(&0), "{cell:?}");
        }
    }
}

/// The traffic `support::chat` promises, in every cell of 20 or more records: edits, deletes and
/// same-instant messages, besides new messages.
fn assert_covered(cells: &[Cell]) {
    for cell in cells.iter().filter(|cell| cell.records >= 20) {
        assert!(
            cell.edits > 0 && cell.removes > 0 && cell.collisions > 0,
            "cell {} at {} lacks edits, deletes or same-instant messages: {cell:?}",
            cell.fault,
            cell.rate
        );
        // At 50 % errors outlast the SDK's 5 attempts: batches fail part-way and are retried, so
        // the checks of a partly failed delivery ran.
        if cell.rate >= 0.5 && cell.fault != "latency" {
            assert!(cell.delivery.item_failures > 0, "{cell:?}");
        }
    }
}

/// The cells RELIABILITY_FAULT_KINDS (comma-separated names as in the report) selects, all when
/// unset; a name that is no cell's is an error, not an empty run.
fn selected(names: &[String]) -> Vec<String> {
    let Ok(kinds) = std::env::var("RELIABILITY_FAULT_KINDS") else {
        return names.to_vec();
    };
    let chosen: Vec<String> = kinds
        .split(',')
        .map(|kind| kind.trim().to_owned())
        .filter(|kind| !kind.is_empty())
        .collect();
    for kind in &chosen {
        assert!(
            names.contains(kind),
            "RELIABILITY_FAULT_KINDS: no cell is named {kind:?}; the cells are {}",
            names.join(", ")
        );
    }
    assert!(
        !chosen.is_empty(),
        "RELIABILITY_FAULT_KINDS is set but names no cell; the cells are {}",
        names.join(", ")
    );
    chosen
}

/// The matrix, in the SDK's standard retry mode (`AWS_RETRY_MODE=standard`): the same error
/// classification and attempts as adaptive mode, without its client-side rate limiter, whose
/// waits after a throttle (see the test below) would make a 1,000-batch matrix take hours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_at_every_rate_loses_nothing() {
    // RELIABILITY_FAULT_RATES (comma-separated) picks the rates: `make reliability` runs each in
    // its own process, so each gets a fresh DynamoDB Local (it slows down over a long run).
    let rates: Vec<f64> = match std::env::var("RELIABILITY_FAULT_RATES") {
        Ok(rates) => rates
            .split(',')
            .map(|r| r.trim().parse().expect("RELIABILITY_FAULT_RATES: numbers"))
            .collect(),
        Err(_) if support::full() => vec![0.05, 0.2, 0.5],
        Err(_) => vec![0.2],
    };
    let batches = support::size(2, 50);
    let names: Vec<String> = plans(0.0).into_iter().map(|(name, _)| name).collect();
    // RELIABILITY_FAULT_KINDS runs only the cells it names, with their seeds.
    let chosen = selected(&names);
    let mut cells = Vec::new();
    for &rate in &rates {
        for (k, (name, plan)) in plans(rate).into_iter().enumerate() {
            if !chosen.contains(&name) {
                continue;
            }
            let seed = 0x5eed + (rate * 1000.0) as u64 * 100 + k as u64;
            let cell = run_cell(
                &name,
                rate,
                plan,
                batches,
                seed,
                RetryMode::Standard,
                BATCH_SIZE,
            )
            .await;
            print(&cell);
            support::report("faults", serde_json::to_value(&cell).unwrap());
            cells.push(cell);
        }
    }
    assert_clean(&cells, batches);
    assert_covered(&cells);
}

/// Throttling in the production retry mode (adaptive): still nothing lost, and the figures show
/// what its rate limiter costs in time. Each request after a throttle waits for the limiter (about
/// 2 s at first), so the quick slice is one batch of one message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_in_adaptive_mode_loses_nothing() {
    let batches = support::size(1, 5);
    let batch_size = support::size(1, BATCH_SIZE);
    let rate = 0.05;
    let kinds: &[Fault] = if support::full() {
        &[Fault::ProvisionedThroughputExceeded, Fault::Throttling]
    } else {
        &[Fault::Throttling]
    };
    let mut cells = Vec::new();
    for (k, fault) in kinds.iter().enumerate() {
        // The first request is throttled for sure, so the rate limiter is exercised every run;
        // in the quick slice that is the only fault, on the write, the slice's last request.
        let plan = if support::full() {
            FaultPlan::none().at(0, *fault).probability(*fault, rate)
        } else {
            FaultPlan::none()
                .at(0, *fault)
                .only(&["TransactWriteItems"])
        };
        let seed = 0xada + k as u64;
        let cell = run_cell(
            fault.name(),
            rate,
            plan,
            batches,
            seed,
            RetryMode::Adaptive,
            batch_size,
        )
        .await;
        print(&cell);
        support::report("faults-adaptive", serde_json::to_value(&cell).unwrap());
        cells.push(cell);
    }
    assert_clean(&cells, batches);
    assert_covered(&cells);
}
