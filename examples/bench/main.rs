//! `make bench`: the Rust consumer against the seed's Python function, side by side in one run, on
//! one DynamoDB Local, through a delay proxy adding 0, 2 and 5 ms per request.
//!
//! For each round-trip latency (latency.rs tunes the proxy) and workload (workloads.rs), the Rust
//! handler (`event::parse_event`, then `handler::handle`, in this process) and the seed (bench/seed_baseline.py in a Python
//! worker, baseline.rs) each run the batch several times (cells.rs), every run on a table reset to
//! the workload's starting state (table.rs). Then the real Lambda binary is started against a stub
//! runtime API (process.rs) for its initialisation and memory (footprint.rs). The cost cells
//! (cost.rs, `--only cost`) run each cost workload once per side at 0 ms and price its capacity.
//! Results go to target/bench/results.json (for bench/plot.py), the console (goals met / not met),
//! and the generated sections of docs/PERFORMANCE.md (report.rs, cost.rs): a run rewrites only the
//! sections it measured. It is not a test: nothing here fails on a slow figure, only on a run that
//! did not do its work.

mod baseline;
mod cells;
mod cold_start;
mod cost;
mod footprint;
mod latency;
mod machine;
mod prices;
mod process;
mod reads;
mod report;
mod table;
mod tcp_delay;
mod workloads;

use anyhow::ensure;
use baseline::{Python, Variant};
use clap::Parser;
use report::{Cell, Results, Runner, WorkloadInfo};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use testkit::fault_proxy::{FaultPlan, Proxy};
use testkit::local;
use testkit::request_log::RequestLog;
use workloads::Workload;

/// The region both sides use (DynamoDB Local keeps one database per access key and region).
pub const REGION: &str = "us-east-1";

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

#[derive(Debug, Parser)]
#[command(about = "Rust consumer vs the seed's Python function, on DynamoDB Local")]
struct Args {
    /// Round-trip times the proxy adds to each request, in ms.
    #[arg(long, value_delimiter = ',', default_value = "0,2,5")]
    latencies_ms: Vec<u64>,
    /// Measured runs of each Rust cell.
    #[arg(long, default_value_t = 7)]
    repeats: usize,
    /// Measured runs of each seed cell (fewer when one run is long, see --cell-budget-s).
    #[arg(long, default_value_t = 5)]
    baseline_repeats: usize,
    /// Time a seed cell may take: fewer runs when one run is long, and a cell whose one run is
    /// expected to take longer (from its requests at a lower latency) is skipped, unless --full.
    #[arg(long, default_value_t = 45.0)]
    cell_budget_s: f64,
    /// Run every seed cell, however long.
    #[arg(long)]
    full: bool,
    /// Seconds of untimed traffic before the first measurement (DynamoDB Local's JIT).
    #[arg(long, default_value_t = 60.0)]
    warm_up_s: f64,
    /// Which part: `all` (the write path against the seed, process figures, then the read table),
    /// `reads` alone (the cache's read table: no Python, and the doc is left alone), or
    /// `cold-start` alone (the Lambda binary's start and first invocations with each read cache).
    #[arg(long, value_enum, default_value = "all")]
    part: Part,
    /// Operations of each read soak (messages and reads mixed).
    #[arg(long, default_value_t = 2000)]
    soak_operations: usize,
    /// Only these workloads (single, groups20, groupchat, groups500, replay) and/or `cost` (the
    /// cost table alone: its seven workloads once per side at 0 ms, no timing, no process figures).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Times the Lambda binary and the Python interpreter are started to measure initialisation.
    #[arg(long, default_value_t = 20)]
    init_runs: usize,
    /// `cold-start`: processes of each variant that serve three batches.
    #[arg(long, default_value_t = 10)]
    cold_start_processes: usize,
    /// `cold-start`: another Lambda binary to start with the cache off beside the others (e.g. one
    /// built from a commit before the cache).
    #[arg(long)]
    baseline_binary: Option<PathBuf>,
    /// The Lambda binary (release) to measure.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/messaging-stream"))]
    binary: PathBuf,
    /// The arm64 package of `make package`, if built.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/target/lambda/messaging-stream"))]
    package_dir: PathBuf,
    /// Python with boto3 (make bench makes a venv).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv-bench/bin/python"))]
    python: PathBuf,
    /// The seed text the baseline function is extracted from (at run time; never copied here).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/seeds/003_642f4c51f00609d2.txt"))]
    seed_file: PathBuf,
    /// Where results.json and the event files go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench"))]
    out_dir: PathBuf,
    /// The doc whose generated sections are rewritten (empty: none).
    // A String: clap's PathBuf parser refuses the empty value of `--doc ''`.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PERFORMANCE.md"))]
    doc: String,
    /// Which DynamoDB Local this is, for the doc (the jar carries no version).
    #[arg(long, default_value = "DynamoDB Local")]
    dynamodb_local: String,
    /// How the bench was started, for the doc.
    #[arg(long, default_value = "make bench")]
    command: String,
    /// Internal: print the memory an event file takes as a serde_json::Value, then exit (the bench
    /// runs itself with this, so the figure comes from a fresh process).
    #[arg(long, hide = true)]
    value_memory: Option<PathBuf>,
}

/// The read table's markdown, beside reads.json in the out dir.
const READS_MARKDOWN: &str = "reads.md";

/// The read part run by a new process of this program (`--part reads`), on its own DynamoDB Local:
/// after the write cells, this one answered every Query in ~180 ms (GetItem stayed at 1-5 ms), which a
/// fresh instance does in 2-10 ms (2026-12-07).
fn reads_in_a_fresh_process(args: &Args) -> anyhow::Result<String> {
    let latencies: Vec<String> = args.latencies_ms.iter().map(u64::to_string).collect();
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(["--part", "reads", "--latencies-ms", &latencies.join(",")])
        .args(["--repeats", &args.repeats.to_string()])
        .args(["--soak-operations", &args.soak_operations.to_string()])
        .args(["--command", &args.command])
        .arg("--out-dir")
        .arg(&args.out_dir)
        .status()?;
    ensure!(status.success(), "the read part failed: {status}");
    Ok(std::fs::read_to_string(args.out_dir.join(READS_MARKDOWN))?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    All,
    Reads,
    ColdStart,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(file) = &args.value_memory {
        return footprint::value_memory(file);
    }
    // One identity for every client here and in the children, set before any thread exists.
    std::env::set_var("AWS_ACCESS_KEY_ID", "local");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "local");
    std::env::set_var("AWS_REGION", REGION);
    for name in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
    ] {
        std::env::remove_var(name);
    }
    let started = Instant::now();
    let load_at_start = machine::load_average();
    println!("starting DynamoDB Local ...");
    let endpoint = local::endpoint().to_owned(); // stopped by PID when this process exits
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args, endpoint, started, load_at_start))
}

async fn run(
    args: Args,
    endpoint: String,
    started: Instant,
    load_at_start: String,
) -> anyhow::Result<()> {
    let upstream: SocketAddr = endpoint.trim_start_matches("http://").parse()?;
    if args.part == Part::Reads {
        let measured = reads::measure(
            upstream,
            &endpoint,
            &args.latencies_ms,
            args.repeats,
            args.soak_operations,
        )
        .await?;
        std::fs::create_dir_all(&args.out_dir)?;
        let json = args.out_dir.join("reads.json");
        std::fs::write(&json, serde_json::to_string_pretty(&measured)?)?;
        let markdown = measured.markdown(&args.command);
        std::fs::write(args.out_dir.join(READS_MARKDOWN), &markdown)?;
        println!("\n{markdown}");
        println!(
            "results: {} (docs/PERFORMANCE.md left alone)",
            json.display()
        );
        return Ok(());
    }
    let direct = local::client_for(
        &local::config_for(&endpoint, table::TABLE),
        &RequestLog::new(),
    )
    .await;
    if args.part == Part::ColdStart {
        let measured = cold_start::measure(&direct, &endpoint, &args).await?;
        let json = args.out_dir.join("cold-start.json");
        std::fs::write(&json, serde_json::to_string_pretty(&measured)?)?;
        println!("\n{}", measured.markdown(&args.command));
        println!(
            "results: {} (docs/PERFORMANCE.md left alone)",
            json.display()
        );
        return Ok(());
    }
    let python = Python {
        interpreter: args.python.clone(),
        script: PathBuf::from(MANIFEST).join("bench/seed_baseline.py"),
        seed_file: args.seed_file.clone(),
    };
    ensure!(
        python.interpreter.is_file(),
        "{} is missing: run `make bench-venv` (make bench does it)",
        python.interpreter.display()
    );
    ensure!(
        python.seed_file.is_file(),
        "the seed text {} is missing",
        python.seed_file.display()
    );

    let known: Vec<&str> = workloads::all().iter().map(|w| w.name).collect();
    for name in &args.only {
        ensure!(
            name == "cost" || known.contains(&name.as_str()),
            "--only {name}: no such workload (known: {}, cost)",
            known.join(", ")
        );
    }
    let workloads: Vec<Workload> = workloads::all()
        .into_iter()
        .filter(|w| args.only.is_empty() || args.only.iter().any(|o| o == w.name))
        .collect();
    let cost_workloads: Vec<Workload> =
        if args.only.is_empty() || args.only.iter().any(|o| o == "cost") {
            workloads::cost()
        } else {
            Vec::new()
        };
    let events_dir = args.out_dir.join("events");
    std::fs::create_dir_all(&events_dir)?;
    let mut event_files = BTreeMap::new();
    for w in &workloads {
        let path = events_dir.join(format!("{}.json", w.name));
        std::fs::write(&path, w.event.to_string())?;
        event_files.insert(w.name, path);
    }
    let mut cost_files = BTreeMap::new();
    for w in &cost_workloads {
        let path = events_dir.join(format!("cost-{}.json", w.name));
        std::fs::write(&path, w.event.to_string())?;
        cost_files.insert(w.name, path);
    }

    let mut cells: Vec<Cell> = Vec::new();
    let mut calibration = Vec::new();
    let mut python_peak_rss = None;
    let mut hello = None;
    // In the order given (ascending by default: a seed cell's estimate comes from a lower RTT).
    let latencies = if workloads.is_empty() {
        Vec::new()
    } else {
        args.latencies_ms.clone()
    };
    for (round, &latency_ms) in latencies.iter().enumerate() {
        let proxy = Proxy::start(
            upstream,
            FaultPlan::with_latency(Duration::from_millis(latency_ms)),
        )
        .await?;
        let mut side = cells::side(proxy, &python).await?;
        if round == 0 {
            cells::warm_up_server(&mut side, &direct, &events_dir, args.warm_up_s).await?;
        }
        let tuned = latency::tune(&direct, &side.proxy, latency_ms).await?;
        println!(
            "\n== RTT {latency_ms} ms (the proxy sleeps {:.2} ms per request and adds {:.2} ms, measured)",
            tuned.proxy_sleep_ms, tuned.added_ms
        );
        calibration.push(tuned);
        hello.get_or_insert((
            side.worker.hello.python.clone(),
            side.worker.hello.boto3.clone(),
            side.worker.hello.function_bytes,
        ));
        // Warm both sides once (connections, lazy initialisation), as a warm Lambda would be.
        let warm = &workloads::all()[0];
        table::reset(&direct, &warm.rows).await?;
        cells::rust_run(&mut side, warm).await?;
        table::reset(&direct, &warm.rows).await?;
        let warm_file = events_dir.join("warm-up.json");
        std::fs::write(&warm_file, warm.event.to_string())?;
        cells::seed_run(&mut side, &warm_file, Variant::First).await?;

        for w in &workloads {
            cells.push(cells::rust_cell(&mut side, &direct, w, latency_ms, args.repeats).await?);
            for (runner, variant) in [
                (Runner::SeedFirst, Variant::First),
                (Runner::SeedAll, Variant::All),
            ] {
                let earlier = cells
                    .iter()
                    .filter(|c| {
                        c.workload == w.name
                            && c.runner == runner
                            && c.skipped.is_none()
                            && c.latency_ms <= latency_ms
                    })
                    .max_by_key(|c| c.latency_ms);
                let cell = cells::seed_cell(
                    &mut side,
                    &direct,
                    w,
                    &event_files[w.name],
                    latency_ms,
                    runner,
                    variant,
                    earlier,
                    &args,
                )
                .await?;
                cells.push(cell);
            }
        }
        python_peak_rss = python_peak_rss.max(Some(side.worker.peak_rss().await?));
        side.worker.stop().await;
    }

    let mut cost_cells = Vec::new();
    let mut cost_probe = Vec::new();
    if !cost_workloads.is_empty() {
        println!("\n== cost: how DynamoDB Local counts a transaction's write units");
        cost_probe = cost::probe(&direct).await?;
        for p in &cost_probe {
            println!(
                "  items of {:?} bytes: reported {}, DynamoDB Local's rule {}, AWS's rule {}",
                p.item_bytes,
                cost::units(p.reported),
                cost::units(p.local_rules),
                cost::units(p.aws_rules)
            );
        }
        // Capacity does not depend on latency: one proxy adding nothing, both sides through it.
        let proxy = Proxy::start(upstream, FaultPlan::with_latency(Duration::ZERO)).await?;
        let mut side = cells::side(proxy, &python).await?;
        hello.get_or_insert((
            side.worker.hello.python.clone(),
            side.worker.hello.boto3.clone(),
            side.worker.hello.function_bytes,
        ));
        println!("\n== cost: capacity per delivered message (once per side, 0 ms)");
        for w in &cost_workloads {
            cost_cells.push(cost::rust_cost(&mut side, &direct, w).await?);
            cost_cells.push(cost::seed_cost(&mut side, &direct, w, &cost_files[w.name]).await?);
        }
        side.worker.stop().await;
    }

    let mut process = if workloads.is_empty() {
        report::Process::default()
    } else {
        println!("\n== process figures");
        footprint::figures(&args, &python, &direct, &endpoint).await?
    };
    process.python_peak_rss_bytes = python_peak_rss;
    let (python_version, boto3_version, function_bytes) = hello.unwrap_or_default();
    process.python_function_bytes = Some(function_bytes);

    let mut results = Results {
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        machine: {
            let mut machine =
                machine::machine(&python_version, &boto3_version, &args.dynamodb_local);
            machine.push((
                "Load average (1/5/15 min), start / end".into(),
                format!(
                    "{load_at_start} / {} (the machine is shared)",
                    machine::load_average()
                ),
            ));
            machine
        },
        command: args.command.clone(),
        total_s: started.elapsed().as_secs_f64(),
        workloads: workloads
            .iter()
            .map(|w| WorkloadInfo {
                name: w.name,
                title: w.title,
                records: w.records,
                groups: w.groups,
                rows: w.rows_total(),
                replay: w.replay,
            })
            .collect(),
        latencies_ms: latencies,
        calibration,
        cells,
        process,
        goals: Vec::new(),
        cost: cost_cells,
        cost_probe,
    };
    let timed = !results.cells.is_empty();
    if timed {
        results.evaluate_goals();
    }
    // The cache's read table comes with every timed run (a cost-only run measures no time).
    let reads_markdown = if timed {
        println!("\n== reads (the cache)");
        Some(reads_in_a_fresh_process(&args)?)
    } else {
        None
    };
    let json = args.out_dir.join("results.json");
    std::fs::write(&json, serde_json::to_string_pretty(&results)?)?;
    println!("\nresults: {}", json.display());
    if !args.doc.is_empty() {
        // Only the sections this run measured: a cost-only run leaves the timed section alone.
        let mut doc = std::fs::read_to_string(&args.doc).unwrap_or_default();
        if timed {
            let section = results.markdown();
            // The read table goes inside the generated section, before its END marker.
            let section = match (&reads_markdown, section.rfind(report::END)) {
                (Some(reads), Some(end)) => {
                    format!("{}{reads}\n{}", &section[..end], &section[end..])
                }
                (Some(reads), None) => format!("{section}\n{reads}"),
                (None, _) => section,
            };
            doc = report::splice(&doc, report::BEGIN, report::END, &section);
        }
        if !results.cost.is_empty() {
            let section = cost::markdown(
                &results.cost,
                &results.cost_probe,
                &results.date,
                &results.command,
                &args.dynamodb_local,
            );
            doc = report::splice(&doc, cost::BEGIN, cost::END, &section);
        }
        std::fs::write(&args.doc, doc)?;
        println!("updated: {}", args.doc);
    }
    if timed {
        results.print_goals();
    }
    Ok(())
}
