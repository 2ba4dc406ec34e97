//! What the figures were measured on: CPU, memory, kernel, toolchains, and the load from elsewhere.

/// The 1, 5 and 15 minute load averages: other work on this shared machine skews the figures.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// What the figures were measured on.
pub fn machine(python: &str, boto3: &str, dynamodb_local: &str) -> Vec<(String, String)> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or("?".into(), |kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0));
    let output = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .map(|o| {
                let text = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            })
            .unwrap_or_else(|_| "?".into())
    };
    vec![
        (
            "Machine".into(),
            format!(
                "{cpu}, {cores} cores, {memory_gib} RAM, {}",
                output("uname", &["-srm"])
            ),
        ),
        ("Rust".into(), output("rustc", &["--version"])),
        (
            "Python baseline".into(),
            format!("Python {python}, boto3 {boto3}"),
        ),
        (
            "DynamoDB Local".into(),
            format!(
                "{} (in memory), on {}",
                dynamodb_local,
                output("java", &["-version"])
            ),
        ),
    ]
}
