//! The process figures: the real Lambda binary's initialisation, peak RSS and size, the arm64
//! package, the seed's interpreter start and memory, and what the largest event costs in memory.

use crate::baseline::Python;
use crate::report::{self, EventMemory, Process};
use crate::workloads::{self, Workload};
use crate::{process, table, Args, MANIFEST};
use anyhow::{ensure, Context};
use std::path::{Path, PathBuf};

/// Measures everything but the Python worker's peak RSS, which the cells' workers report.
pub async fn figures(
    args: &Args,
    python: &Python,
    direct: &aws_sdk_dynamodb::Client,
    endpoint: &str,
) -> anyhow::Result<Process> {
    let mut figures = Process {
        rust_binary: args
            .binary
            .strip_prefix(MANIFEST)
            .unwrap_or(&args.binary)
            .display()
            .to_string(),
        ..Process::default()
    };
    if args.binary.is_file() {
        figures.rust_binary_bytes = Some(std::fs::metadata(&args.binary)?.len());
        let mut init_rss = Vec::new();
        for _ in 0..args.init_runs {
            let (init, rss) = process::init_time(&args.binary, endpoint, &[]).await?;
            figures.rust_init_s.push(init.as_secs_f64());
            init_rss.push(rss as f64);
        }
        figures.rust_init_rss_bytes = report::stats(&init_rss).map(|s| s.median as u64);
        let served: Vec<Workload> = workloads::all()
            .into_iter()
            .filter(|w| matches!(w.name, "groups20" | "groupchat" | "groups500"))
            .collect();
        let rows: Vec<_> = served.iter().flat_map(|w| w.rows.iter().cloned()).collect();
        table::reset(direct, &rows).await?;
        let run = process::serve_batches(
            &args.binary,
            endpoint,
            &[],
            served.iter().map(|w| w.event.clone()).collect(),
        )
        .await
        .context("serving batches with the Lambda binary")?;
        figures.rust_invocations_s = run.invocations.iter().map(|d| d.as_secs_f64()).collect();
        figures.rust_invocation_events = served.iter().map(|w| w.name).collect();
        figures.rust_peak_rss_bytes = run.peak_rss_after.iter().copied().max();
        figures.rust_peak_rss_after = run.peak_rss_after.clone();
        let largest = served
            .iter()
            .max_by_key(|w| w.records)
            .expect("served batches");
        let file = args
            .out_dir
            .join("events")
            .join(format!("{}.json", largest.name));
        std::fs::write(&file, largest.event.to_string())?;
        let (json_bytes, value_bytes) = measure_value_memory(&file)?;
        figures.largest_event = Some(EventMemory {
            workload: largest.name,
            json_bytes,
            value_bytes,
        });
        println!(
            "  Rust: init {} ; peak RSS after init {}, after each batch {:?} ; invocations {:?}",
            report::stats(&figures.rust_init_s).map_or("-".into(), |s| report::spread(&s)),
            figures.rust_init_rss_bytes.map_or("-".into(), report::mib),
            run.peak_rss_after
                .iter()
                .map(|b| report::mib(*b))
                .collect::<Vec<_>>(),
            run.invocations
        );
    } else {
        figures.notes.push(format!(
            "The release binary {} was not there: `cargo build --release --bin messaging-stream` (make bench does it).",
            args.binary.display()
        ));
    }
    let mut init_rss = Vec::new();
    for _ in 0..args.init_runs.div_ceil(2) {
        let (init, rss) = python.init_time(endpoint).await?;
        figures.python_init_s.push(init.as_secs_f64());
        init_rss.push(rss as f64);
    }
    figures.python_init_rss_bytes = report::stats(&init_rss).map(|s| s.median as u64);
    println!(
        "  Python: init {} ; peak RSS after init {}",
        report::stats(&figures.python_init_s).map_or("-".into(), |s| report::spread(&s)),
        figures
            .python_init_rss_bytes
            .map_or("-".into(), report::mib),
    );
    let size = |path: PathBuf| {
        std::fs::metadata(&path).ok().map(|m| {
            (
                path.strip_prefix(MANIFEST)
                    .unwrap_or(&path)
                    .display()
                    .to_string(),
                m.len(),
            )
        })
    };
    figures.arm64_zip = size(args.package_dir.join("bootstrap.zip"));
    figures.arm64_bootstrap = size(args.package_dir.join("bootstrap")).or_else(|| {
        size(
            PathBuf::from(MANIFEST)
                .join("target/aarch64-unknown-linux-gnu/release/messaging-stream"),
        )
    });
    figures.arm64_jitter_entropy = jitter_entropy_setting();
    if figures.arm64_zip.is_none() {
        figures.notes.push(format!(
            "No arm64 package in {}: `make package` builds it (several minutes); make bench does not.",
            args.package_dir.display()
        ));
    }
    Ok(figures)
}

/// Prints `{"json_bytes", "value_bytes"}`: the event file's size, and how much the resident set of
/// this (fresh) process grows when the file, already read, is parsed into a `serde_json::Value`
/// and kept, as `lambda_runtime` does with a `LambdaEvent<Value>`.
pub fn value_memory(file: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)?;
    let before = process::resident(std::process::id())?;
    let value: serde_json::Value = serde_json::from_str(&text)?;
    let after = process::resident(std::process::id())?;
    println!(
        "{}",
        serde_json::json!({"json_bytes": text.len(), "value_bytes": after.saturating_sub(before)})
    );
    drop(value);
    Ok(())
}

/// Runs `value_memory` in a fresh process of this program.
fn measure_value_memory(file: &Path) -> anyhow::Result<(u64, u64)> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg("--value-memory")
        .arg(file)
        .output()?;
    ensure!(output.status.success(), "--value-memory failed: {output:?}");
    let figures: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok((
        figures["json_bytes"].as_u64().unwrap_or(0),
        figures["value_bytes"].as_u64().unwrap_or(0),
    ))
}

/// What the newest arm64 build of aws-lc-sys said about `AWS_LC_SYS_NO_JITTER_ENTROPY`, from its
/// build-script output (`make package` sets it; see docs/PERFORMANCE.md).
fn jitter_entropy_setting() -> Option<String> {
    let build = PathBuf::from(MANIFEST).join("target/aarch64-unknown-linux-gnu/release/build");
    let newest = std::fs::read_dir(&build)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("aws-lc-sys-"))
        .map(|e| e.path().join("output"))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()?
        .1;
    let output = std::fs::read_to_string(&newest).ok()?;
    let line = output
        .lines()
        .find(|l| l.contains("Environment Variable found 'AWS_LC_SYS_NO_JITTER_ENTROPY'"));
    Some(match line {
        Some(line) => format!(
            "{} (`{}`)",
            line.trim_start_matches("cargo:warning="),
            newest.strip_prefix(MANIFEST).unwrap_or(&newest).display()
        ),
        None => format!(
            "AWS_LC_SYS_NO_JITTER_ENTROPY was not set when aws-lc-sys was built (`{}`)",
            newest.strip_prefix(MANIFEST).unwrap_or(&newest).display()
        ),
    })
}
