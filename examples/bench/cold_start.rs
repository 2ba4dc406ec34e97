//! The Lambda's cold start with each read cache (`make bench-cold-start`): the real release binary,
//! started as Lambda starts it (process.rs), with the cache off, the DynamoDB cache and Valkey, in
//! turn within each round so that the machine's load falls on all alike.
//!
//! Initialisation is spawn to the first `/next`. Then fresh processes serve three one-message
//! batches to one group each: the first invocation opens the connections (DynamoDB's and, with a
//! cache, the cache's: Valkey's lazily, on its first invalidation: the IAM token signed, TCP, TLS,
//! AUTH, the pipelined DELs), the next two reuse them. Valkey is testkit's TLS `redis-server` with an
//! ACL user that takes any password (`nopass`): it stands in for ElastiCache checking the IAM token,
//! which the function signs as in AWS. Every variant trusts the same roots, the system's bundle plus the
//! test CA (`SSL_CERT_FILE`), so each loads as many roots as a system bundle holds. A baseline binary
//! (`--baseline-binary`, e.g. one built from a commit before the cache) runs with the cache off
//! beside the others.

use crate::process::{self, Environment};
use crate::report::{self, Stats};
use crate::table;
use anyhow::{ensure, Context};
use aws_sdk_dynamodb::Client;
use ddb::commands::schema;
use messaging_stream::plan::Item;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use testkit::{items, valkey};

/// The DynamoDB cache's table for the `dynamodb` variant.
const CACHE_TABLE: &str = "bench-cold-start-cache";
/// The ACL user standing in for the function's IAM-authenticated ElastiCache user.
const VALKEY_USER: &str = "function-iam-stand-in";
/// The group every batch writes to; its two members' rows are reset before each process.
const GROUP: &str = "cold-start";
/// Batches each process serves (one message each).
const BATCHES: usize = 3;

/// One binary with one cache setting.
struct Variant {
    name: String,
    binary: PathBuf,
    env: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VariantResult {
    pub name: String,
    pub binary: String,
    pub init_s: Vec<f64>,
    /// Peak RSS at the first `/next`, per start.
    pub init_rss_bytes: Vec<f64>,
    /// Per process: the time of each of its batches, in order.
    pub invocations_s: Vec<Vec<f64>>,
    /// Per process: its peak RSS after the last batch.
    pub peak_rss_bytes: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColdStart {
    pub runs: usize,
    pub processes: usize,
    pub variants: Vec<VariantResult>,
}

fn rows() -> Vec<Item> {
    ["cold-a", "cold-b"]
        .iter()
        .map(|owner| items::group_row(owner, GROUP, "2026-01-01T00:00:00.000000+00:00", "hi"))
        .collect()
}

fn events() -> Vec<serde_json::Value> {
    (1..=BATCHES)
        .map(|i| {
            items::event(vec![items::message_record(
                GROUP,
                &format!("2026-01-01T00:00:0{i}.000000+00:00"),
                "a message",
                &format!("{i}00"),
            )])
        })
        .collect()
}

/// The system's roots and the test CA in one file (made once a run).
fn roots_with(ca_file: &str, out_dir: &Path) -> anyhow::Result<PathBuf> {
    let mut bundle = std::fs::read("/etc/ssl/certs/ca-certificates.crt")
        .context("the system's CA bundle /etc/ssl/certs/ca-certificates.crt")?;
    bundle.extend(std::fs::read(ca_file)?);
    let path = out_dir.join("cold-start-roots.pem");
    std::fs::write(&path, bundle)?;
    Ok(path)
}

async fn variants(
    binary: &Path,
    baseline: Option<&Path>,
    out_dir: &Path,
) -> anyhow::Result<Vec<Variant>> {
    let local = valkey::ddb_environment();
    let setting = |name: &str| {
        local
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .expect("testkit names it")
    };
    // Any password, any key: what this user may do is not measured here (tests/deploy_cache_users.rs
    // holds the template's access strings to the calls the function makes).
    valkey::set_user(VALKEY_USER, &["reset", "on", "nopass", "allkeys", "+@all"]).await;
    // Every variant gets the same roots: rustls-native-certs reads SSL_CERT_FILE alone when it is
    // set, and scans /etc/ssl/certs besides when not, which alone moved initialisation by ~2 ms here.
    let roots = (
        "SSL_CERT_FILE".to_owned(),
        roots_with(&setting("VALKEY_CA_FILE"), out_dir)?
            .display()
            .to_string(),
    );
    let with_roots = |mut env: Vec<(String, String)>| {
        env.push(roots.clone());
        env
    };
    let mut all = vec![
        Variant {
            name: "cache off".into(),
            binary: binary.to_owned(),
            env: with_roots(Vec::new()),
        },
        Variant {
            name: "ReadCache=dynamodb".into(),
            binary: binary.to_owned(),
            env: with_roots(vec![("CACHE_TABLE_NAME".into(), CACHE_TABLE.into())]),
        },
        Variant {
            name: "ReadCache=valkey".into(),
            binary: binary.to_owned(),
            env: with_roots(vec![
                ("VALKEY_ENDPOINT".into(), setting("VALKEY_ENDPOINT")),
                ("VALKEY_USER".into(), VALKEY_USER.into()),
                ("VALKEY_CACHE_NAME".into(), "bench".into()),
            ]),
        },
    ];
    if let Some(baseline) = baseline {
        ensure!(
            baseline.is_file(),
            "--baseline-binary {} is not a file",
            baseline.display()
        );
        all.insert(
            1,
            Variant {
                name: format!("cache off, baseline {}", baseline.display()),
                binary: baseline.to_owned(),
                env: with_roots(Vec::new()),
            },
        );
    }
    Ok(all)
}

/// After `--warm-up-s` of untimed processes, starts each variant `--init-runs` times for its
/// initialisation, then `--cold-start-processes` times to serve three batches, round-robin.
pub async fn measure(
    direct: &Client,
    endpoint: &str,
    args: &crate::Args,
) -> anyhow::Result<ColdStart> {
    let (binary, baseline, out_dir) = (
        args.binary.as_path(),
        args.baseline_binary.as_deref(),
        args.out_dir.as_path(),
    );
    let (runs, processes, warm_up_s) = (args.init_runs, args.cold_start_processes, args.warm_up_s);
    ensure!(
        binary.is_file(),
        "{} is missing: `make bench-cold-start` builds it",
        binary.display()
    );
    std::fs::create_dir_all(out_dir)?;
    let variants = variants(binary, baseline, out_dir).await?;
    let _ = direct.delete_table().table_name(CACHE_TABLE).send().await;
    schema::create_cache_table(direct, CACHE_TABLE).await?;
    let mut results: Vec<VariantResult> = variants
        .iter()
        .map(|v| VariantResult {
            name: v.name.clone(),
            binary: v.binary.display().to_string(),
            init_s: Vec::new(),
            init_rss_bytes: Vec::new(),
            invocations_s: Vec::new(),
            peak_rss_bytes: Vec::new(),
        })
        .collect();
    // DynamoDB Local answers its first thousands of requests slower (its JIT): untimed rounds first.
    println!("== warm-up: {warm_up_s:.0} s of untimed processes");
    let rows = rows();
    let started = std::time::Instant::now();
    while started.elapsed().as_secs_f64() < warm_up_s {
        for variant in &variants {
            table::reset(direct, &rows).await?;
            process::serve_batches(&variant.binary, endpoint, &variant.env, events()).await?;
        }
    }
    println!("== cold start: {runs} starts of each variant, round-robin");
    for _ in 0..runs {
        for (variant, result) in variants.iter().zip(&mut results) {
            let env: &Environment = &variant.env;
            let (init, rss) = process::init_time(&variant.binary, endpoint, env).await?;
            result.init_s.push(init.as_secs_f64());
            result.init_rss_bytes.push(rss as f64);
        }
    }
    println!("== first invocations: {processes} processes of each variant, {BATCHES} batches each");
    for _ in 0..processes {
        for (variant, result) in variants.iter().zip(&mut results) {
            table::reset(direct, &rows).await?;
            let served = process::serve_batches(&variant.binary, endpoint, &variant.env, events())
                .await
                .with_context(|| format!("{}: serving {BATCHES} batches", variant.name))?;
            result
                .invocations_s
                .push(served.invocations.iter().map(|d| d.as_secs_f64()).collect());
            result
                .peak_rss_bytes
                .push(served.peak_rss_after.iter().copied().max().unwrap_or(0) as f64);
        }
    }
    for r in &results {
        let first = r.invocations_s.iter().map(|i| i[0]).collect::<Vec<_>>();
        println!(
            "  {:<40} init {}  first invocation {}",
            r.name,
            report::time(median(&r.init_s)),
            report::time(median(&first))
        );
    }
    Ok(ColdStart {
        runs,
        processes,
        variants: results,
    })
}

fn median(samples: &[f64]) -> f64 {
    report::stats(samples).map_or(f64::NAN, |s| s.median)
}

impl ColdStart {
    pub fn markdown(&self, command: &str) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "Command: `{command}`. After the warm-up, {} starts of each variant for initialisation (spawn to the first `/next`), then {} processes of each serving {BATCHES} one-message batches (one group of two rows; DynamoDB Local on loopback, no added RTT), round-robin. Median (min-max).\n",
            self.runs, self.processes
        );
        let _ = writeln!(
            md,
            "| variant | initialisation | peak RSS at init | 1st invocation | 2nd | 3rd | peak RSS after |\n|---|---|---|---|---|---|---|"
        );
        let spread = |samples: &[f64]| {
            report::stats(samples).map_or("-".to_owned(), |s: Stats| report::spread(&s))
        };
        for v in &self.variants {
            let nth = |n: usize| {
                spread(
                    &v.invocations_s
                        .iter()
                        .filter_map(|i| i.get(n).copied())
                        .collect::<Vec<_>>(),
                )
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                v.name,
                spread(&v.init_s),
                report::mib(median(&v.init_rss_bytes) as u64),
                nth(0),
                nth(1),
                nth(2),
                report::mib(median(&v.peak_rss_bytes) as u64),
            );
        }
        md
    }
}
