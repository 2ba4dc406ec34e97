//! The bench's results: what was measured (results.json, read by bench/plot.py), the goals as met or
//! not met, and the generated part of docs/PERFORMANCE.md.

use messaging_stream::Config;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub const BEGIN: &str = "<!-- BEGIN make bench: generated, do not edit by hand -->";
pub const END: &str = "<!-- END make bench -->";

/// Who handled the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Runner {
    Rust,
    /// The seed as Lambda calls it: Records[0] only.
    SeedFirst,
    /// The seed once per record.
    SeedAll,
}

impl Runner {
    pub fn title(self) -> &'static str {
        match self {
            Runner::Rust => "Rust",
            Runner::SeedFirst => "seed, Records[0] only",
            Runner::SeedAll => "seed, all records",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub workload: &'static str,
    pub latency_ms: u64,
    pub runner: Runner,
    /// Wall time of each measured run, seconds.
    pub runs_s: Vec<f64>,
    /// Requests of one run by operation (the same in every run, checked).
    pub requests: BTreeMap<String, u64>,
    /// Why the cell was not run.
    pub skipped: Option<String>,
}

impl Cell {
    pub fn median(&self) -> Option<f64> {
        stats(&self.runs_s).map(|s| s.median)
    }

    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

pub fn stats(samples: &[f64]) -> Option<Stats> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    Some(Stats {
        median,
        min: sorted[0],
        max: sorted[n - 1],
        n,
    })
}

/// A duration given in seconds, to about three significant figures.
pub fn time(seconds: f64) -> String {
    let ms = seconds * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else if ms < 10_000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{seconds:.1} s")
    }
}

pub fn spread(stats: &Stats) -> String {
    if stats.n == 1 {
        format!("{} (1 run)", time(stats.median))
    } else {
        format!(
            "{} ({}–{}, n={})",
            time(stats.median),
            time(stats.min),
            time(stats.max),
            stats.n
        )
    }
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub fn requests(counts: &BTreeMap<String, u64>) -> String {
    let total: u64 = counts.values().sum();
    let parts: Vec<String> = counts.iter().map(|(op, n)| format!("{n} {op}")).collect();
    if parts.len() <= 1 {
        parts.first().cloned().unwrap_or_else(|| "0".into())
    } else {
        format!("{total} ({})", parts.join(", "))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkloadInfo {
    pub name: &'static str,
    pub title: &'static str,
    pub records: usize,
    pub groups: usize,
    pub rows: usize,
    pub replay: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub latency_ms: u64,
    /// What the proxy was told to sleep per request, tuned so that `added_ms` is near `latency_ms`.
    pub proxy_sleep_ms: f64,
    /// Median extra time of one small request through the proxy, over a direct request.
    pub added_ms: f64,
}

/// How much memory the largest batch's event takes once parsed (a fresh process, `--value-memory`).
#[derive(Debug, Clone, Serialize)]
pub struct EventMemory {
    pub workload: &'static str,
    pub json_bytes: u64,
    pub value_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Process {
    pub largest_event: Option<EventMemory>,
    pub rust_binary: String,
    pub rust_init_s: Vec<f64>,
    pub rust_invocations_s: Vec<f64>,
    pub rust_invocation_events: Vec<&'static str>,
    pub rust_peak_rss_bytes: Option<u64>,
    /// Median VmHWM at the first `/next` (initialised, no event yet).
    pub rust_init_rss_bytes: Option<u64>,
    /// VmHWM after each batch of `rust_invocation_events`.
    pub rust_peak_rss_after: Vec<u64>,
    pub rust_binary_bytes: Option<u64>,
    pub python_init_s: Vec<f64>,
    pub python_peak_rss_bytes: Option<u64>,
    /// Median ru_maxrss once the seed module is imported.
    pub python_init_rss_bytes: Option<u64>,
    pub python_function_bytes: Option<u64>,
    /// arm64 package from `make package`, if built: (path, bytes).
    pub arm64_zip: Option<(String, u64)>,
    pub arm64_bootstrap: Option<(String, u64)>,
    /// What aws-lc-sys's build script reported for the arm64 build.
    pub arm64_jitter_entropy: Option<String>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    pub goal: String,
    pub measured: String,
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub date: String,
    pub machine: Vec<(String, String)>,
    pub command: String,
    pub total_s: f64,
    pub workloads: Vec<WorkloadInfo>,
    pub latencies_ms: Vec<u64>,
    pub calibration: Vec<Calibration>,
    pub cells: Vec<Cell>,
    pub process: Process,
    pub goals: Vec<Goal>,
    /// The cost table's cells (cost.rs), Rust and seed per workload.
    pub cost: Vec<crate::cost::CostCell>,
    /// How DynamoDB Local counted the probe's transactions (cost.rs).
    pub cost_probe: Vec<crate::cost::Probe>,
}

impl Results {
    /// Least time the Rust handler's round trips can take at `latency_ms` (see the doc): per wave of
    /// groups, the GSI query, then the group's transactions, which run concurrently.
    fn rtt_floor_s(&self, w: &WorkloadInfo, latency_ms: u64) -> Option<f64> {
        let requests = self
            .cell(w.name, latency_ms, Runner::Rust)?
            .total_requests() as f64;
        let added = self
            .calibration
            .iter()
            .find(|c| c.latency_ms == latency_ms)?
            .added_ms;
        let waves = w.groups.div_ceil(Config::default().group_concurrency) as f64;
        let round_trips = (requests / w.groups as f64).min(2.0);
        Some(waves * round_trips * added.max(0.0) / 1000.0)
    }

    pub fn cell(&self, workload: &str, latency_ms: u64, runner: Runner) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.workload == workload && c.latency_ms == latency_ms && c.runner == runner)
    }

    fn ratio(&self, workload: &str, latency_ms: u64, baseline: Runner) -> Option<f64> {
        let rust = self.cell(workload, latency_ms, Runner::Rust)?.median()?;
        let seed = self.cell(workload, latency_ms, baseline)?.median()?;
        Some(seed / rust)
    }

    /// Evaluates the goals on what was measured.
    pub fn evaluate_goals(&mut self) {
        let mut goals = Vec::new();

        // At most 2 requests per distinct group per batch, in every workload and latency.
        let mut worst: Option<(f64, String)> = None;
        let mut per_workload = Vec::new();
        for w in &self.workloads {
            let most = self
                .cells
                .iter()
                .filter(|c| c.workload == w.name && c.runner == Runner::Rust && c.skipped.is_none())
                .map(|c| c.total_requests())
                .max();
            if let Some(most) = most {
                let per_group = most as f64 / w.groups as f64;
                per_workload.push(format!("{} {per_group:.2}", w.name));
                if worst.as_ref().is_none_or(|(p, _)| per_group > *p) {
                    worst = Some((per_group, w.name.to_owned()));
                }
            }
        }
        goals.push(Goal {
            goal: "at most 2 DynamoDB requests per distinct group per batch".into(),
            measured: format!("requests/group: {}", per_workload.join(", ")),
            met: worst.map(|(p, _)| p <= 2.0),
        });

        let ratio = self.ratio("groups20", 5, Runner::SeedAll);
        goals.push(Goal {
            goal: "20-group batch at 5 ms RTT at least 50x faster than the all-records seed".into(),
            measured: ratio.map_or("not measured".into(), |r| format!("{r:.0}x")),
            met: ratio.map(|r| r >= 50.0),
        });

        let init = stats(&self.process.rust_init_s);
        goals.push(Goal {
            goal: "initialisation at most 20 ms".into(),
            measured: init.map_or("not measured".into(), |s| spread(&s)),
            met: init.map(|s| s.median <= 0.020),
        });

        let rss = self.process.rust_peak_rss_bytes;
        let after: Vec<String> = self
            .process
            .rust_invocation_events
            .iter()
            .zip(&self.process.rust_peak_rss_after)
            .map(|(e, b)| format!("{} after {e}", mib(*b)))
            .collect();
        goals.push(Goal {
            goal: "peak RSS at most 16 MiB".into(),
            measured: rss.map_or("not measured".into(), |b| {
                format!("{} over the run ({})", mib(b), after.join(", "))
            }),
            met: rss.map(|b| b <= 16 * 1024 * 1024),
        });
        self.goals = goals;
    }

    pub fn print_goals(&self) {
        println!("\nGoals:");
        for goal in &self.goals {
            let verdict = match goal.met {
                Some(true) => "MET",
                Some(false) => "NOT MET",
                None => "NOT MEASURED",
            };
            println!("  [{verdict}] {}: {}", goal.goal, goal.measured);
        }
    }

    /// The generated section of docs/PERFORMANCE.md.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "{BEGIN}\n");
        let _ = writeln!(md, "### The run\n");
        let _ = writeln!(md, "- Date: {}", self.date);
        for (key, value) in &self.machine {
            let _ = writeln!(md, "- {key}: {value}");
        }
        let _ = writeln!(md, "- Command: `{}`", self.command);
        let _ = writeln!(md, "- Bench duration: {:.0} s\n", self.total_s);

        let _ = writeln!(md, "### Goals\n");
        let _ = writeln!(md, "| goal | measured | verdict |\n|---|---|---|");
        for goal in &self.goals {
            let verdict = match goal.met {
                Some(true) => "met",
                Some(false) => "**not met**",
                None => "not measured",
            };
            let _ = writeln!(md, "| {} | {} | {verdict} |", goal.goal, goal.measured);
        }

        let _ = writeln!(md, "\n### DynamoDB requests per batch, by operation\n");
        let _ = writeln!(
            md,
            "Counted per HTTP attempt (SDK interceptor; botocore `before-send`), the same at every RTT.\n"
        );
        let _ = writeln!(
            md,
            "| workload | records | groups | rows | Rust | per group | seed, Records[0] only | seed, all records |\n|---|---:|---:|---:|---|---:|---|---|"
        );
        for w in &self.workloads {
            let counts = |runner| {
                self.cells
                    .iter()
                    .find(|c| c.workload == w.name && c.runner == runner && c.skipped.is_none())
                    .map_or("not run".into(), |c| requests(&c.requests))
            };
            let per_group = self
                .cells
                .iter()
                .find(|c| c.workload == w.name && c.runner == Runner::Rust && c.skipped.is_none())
                .map_or("".into(), |c| {
                    format!("{:.2}", c.total_requests() as f64 / w.groups as f64)
                });
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {per_group} | {} | {} |",
                w.title,
                w.records,
                w.groups,
                w.rows,
                counts(Runner::Rust),
                counts(Runner::SeedFirst),
                counts(Runner::SeedAll)
            );
        }

        let _ = writeln!(md, "\n### Wall time per batch\n");
        let _ = writeln!(
            md,
            "Median (min–max, n runs); records/s from the median; ratio = seed median / Rust median. \
             RTT floor: the least time the Rust handler's round trips take at that RTT, \
             ceil(groups / GROUP_CONCURRENCY {}) × its round trips per group (the query, then its \
             transactions at once: at most 2) × the RTT the proxy really added; \
             the rest is DynamoDB Local's service time and CPU (2 cores shared by server, bench and seed).\n",
            Config::default().group_concurrency
        );
        let _ = writeln!(
            md,
            "| workload | RTT | Rust | Rust records/s | RTT floor | seed, all records | seed records/s | ratio | seed, Records[0] only | ratio |\n|---|---:|---|---:|---:|---|---:|---:|---|---:|"
        );
        for w in &self.workloads {
            for &latency in &self.latencies_ms {
                let show = |runner| match self.cell(w.name, latency, runner) {
                    None => "not run".to_owned(),
                    Some(c) => match (&c.skipped, stats(&c.runs_s)) {
                        (Some(why), _) => why.clone(),
                        (None, Some(s)) => spread(&s),
                        (None, None) => "no runs".into(),
                    },
                };
                let rate = |runner| {
                    self.cell(w.name, latency, runner)
                        .and_then(Cell::median)
                        .map_or("".into(), |m| format!("{:.0}", w.records as f64 / m))
                };
                let ratio = |runner| {
                    self.ratio(w.name, latency, runner).map_or("".into(), |r| {
                        if r < 1.0 {
                            format!("{r:.2}x")
                        } else {
                            format!("{r:.1}x")
                        }
                    })
                };
                let floor = self.rtt_floor_s(w, latency).map_or("".into(), time);
                let _ = writeln!(
                    md,
                    "| {} | {latency} ms | {} | {} | {floor} | {} | {} | {} | {} | {} |",
                    w.title,
                    show(Runner::Rust),
                    rate(Runner::Rust),
                    show(Runner::SeedAll),
                    rate(Runner::SeedAll),
                    ratio(Runner::SeedAll),
                    show(Runner::SeedFirst),
                    ratio(Runner::SeedFirst)
                );
            }
        }

        let _ = writeln!(md, "\n### The delay proxy, measured\n");
        let _ = writeln!(
            md,
            "The fault proxy (`testkit/src/fault_proxy.rs`) sleeps on tokio's millisecond timer, which overshoots; \
             the bench lowers its sleep until the measured extra time of a GetItem through it, over a \
             direct one (median of 60 pairs), is the RTT asked for.\n"
        );
        let _ = writeln!(
            md,
            "| RTT asked | proxy sleep | added, measured |\n|---:|---:|---:|"
        );
        for c in &self.calibration {
            let _ = writeln!(
                md,
                "| {} ms | {:.2} ms | {:.2} ms |",
                c.latency_ms, c.proxy_sleep_ms, c.added_ms
            );
        }

        let p = &self.process;
        let _ = writeln!(md, "\n### Process figures\n");
        let _ = writeln!(md, "| | Rust: `messaging-stream` (release, x86_64, this machine) | seed: Python + boto3 |\n|---|---|---|");
        let init = |s: &[f64]| stats(s).map_or("not measured".into(), |s| spread(&s));
        let _ = writeln!(
            md,
            "| initialisation | {} (spawn to first `/next` on the stub runtime API) | {} (spawn to the seed module imported) |",
            init(&p.rust_init_s),
            init(&p.python_init_s)
        );
        let _ = writeln!(
            md,
            "| peak RSS once initialised | {} (VmHWM at the first `/next`, median) | {} (ru_maxrss after the import, median) |",
            p.rust_init_rss_bytes.map_or("not measured".into(), mib),
            p.python_init_rss_bytes.map_or("not measured".into(), mib)
        );
        let after: Vec<String> = p
            .rust_invocation_events
            .iter()
            .zip(&p.rust_peak_rss_after)
            .map(|(e, b)| format!("{} after {e}", mib(*b)))
            .collect();
        let _ = writeln!(
            md,
            "| peak RSS over a run | {} (VmHWM: {}) | {} (ru_maxrss of a worker after every workload) |",
            p.rust_peak_rss_bytes.map_or("not measured".into(), mib),
            after.join(", "),
            p.python_peak_rss_bytes.map_or("not measured".into(), mib)
        );
        if let Some(e) = &p.largest_event {
            let _ = writeln!(
                md,
                "| the {} event in memory | {} of JSON takes {} more RSS once parsed into a `serde_json::Value` (a fresh process: `bench --value-memory FILE`) | |",
                e.workload,
                mib(e.json_bytes),
                mib(e.value_bytes)
            );
        }
        if !p.rust_invocations_s.is_empty() {
            let list: Vec<String> = p
                .rust_invocation_events
                .iter()
                .zip(&p.rust_invocations_s)
                .map(|(e, s)| format!("{e} {}", time(*s)))
                .collect();
            let _ = writeln!(
                md,
                "| invocations of that run (direct to DynamoDB Local; the first opens the connection) | {} | |",
                list.join(", ")
            );
        }
        let size = |s: &Option<(String, u64)>| {
            s.as_ref()
                .map_or("not built (run `make package`)".into(), |(path, b)| {
                    format!("{} (`{path}`)", mib(*b))
                })
        };
        let _ = writeln!(
            md,
            "| arm64 package (`make package`) | zip {}; bootstrap {} | the function alone: {} bytes (boto3 comes with the runtime) |",
            size(&p.arm64_zip),
            size(&p.arm64_bootstrap),
            p.python_function_bytes.map_or("?".into(), |b| b.to_string())
        );
        if let Some(jitter) = &p.arm64_jitter_entropy {
            let _ = writeln!(md, "| arm64 build of aws-lc-sys | {jitter} | |");
        }
        if let Some(bytes) = p.rust_binary_bytes {
            let _ = writeln!(
                md,
                "| x86_64 release binary measured above | {} (`{}`) | |",
                mib(bytes),
                p.rust_binary
            );
        }
        for note in &p.notes {
            let _ = writeln!(md, "\n- {note}");
        }
        let _ = writeln!(
            md,
            "\n![wall time against batch size](perf-wall-time.png)\n"
        );
        let _ = writeln!(md, "{END}");
        md
    }
}

/// Replaces the generated section of `doc` between the markers `begin` and `end` (or appends it
/// when the markers are missing).
pub fn splice(doc: &str, begin_marker: &str, end_marker: &str, section: &str) -> String {
    match (doc.find(begin_marker), doc.find(end_marker)) {
        (Some(begin), Some(end)) if begin < end => format!(
            "{}{}{}",
            &doc[..begin],
            section.trim_end(),
            &doc[end + end_marker.len()..]
        ),
        _ => format!("{}\n\n{}\n", doc.trim_end(), section.trim_end()),
    }
}
