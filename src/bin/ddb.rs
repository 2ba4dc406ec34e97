//! `ddb`: the developer CLI for the Cruddur table on DynamoDB Local (or any endpoint).
//!
//! Thin: parses arguments, builds clients from the same [`Config`] as the Lambda, and calls the
//! library. Results go to stdout; logs go to stderr.

use anyhow::{bail, Context as _, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use messaging_stream::cache::dynamo::DynamoCache;
use messaging_stream::cache::read::{Entry, Reader};
use messaging_stream::filter::EventFilter;
use messaging_stream::local::watch::{StartingPosition, StatsSnapshot, Trigger, WatchOptions};
use messaging_stream::local::{
    admin, failure_records, queries, redrive, replay, schema, seed, stream, write,
};
use messaging_stream::metrics::{Metrics, MetricsConfig, Output};
use messaging_stream::plan::Item;
use messaging_stream::{App, Config};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Where the Makefile runs DynamoDB Local.
const LOCAL_ENDPOINT: &str = "http://127.0.0.1:8000";
/// `--endpoint aws`: no endpoint override, the SDK's own (DynamoDB and DynamoDB Streams differ there).
const AWS_ENDPOINTS: &str = "aws";
/// The cache table `schema-load --cache` creates when none is named.
const LOCAL_CACHE_TABLE: &str = "cruddur-cache-local";

#[derive(Parser)]
#[command(
    name = "ddb",
    version,
    about = "Run the Cruddur messaging table and its stream consumer locally"
)]
struct Cli {
    /// DynamoDB endpoint, or `aws` for AWS's own endpoints (region and credentials from the AWS environment)
    /// [env: AWS_ENDPOINT_URL_DYNAMODB; default: http://127.0.0.1:8000]
    #[arg(long, global = true)]
    endpoint: Option<String>,
    /// Table name [env: TABLE_NAME; default: cruddur-messages]
    #[arg(long, global = true)]
    table: Option<String>,
    /// Print JSON lines instead of a table
    #[arg(long, global = true)]
    json: bool,
    /// The read-path cache table [env: CACHE_TABLE_NAME; default: none, reads go to the table]
    #[arg(long, global = true)]
    cache_table: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the table (pk/sk, the group GSI, a NEW_IMAGE stream); an existing table is fine.
    SchemaLoad {
        /// Also create the cache table (key id, TTL on expires_at): --cache-table, CACHE_TABLE_NAME,
        /// or cruddur-cache-local.
        #[arg(long)]
        cache: bool,
    },
    /// Write users, conversations and messages (idempotent).
    Seed,
    /// Pattern B: a user's conversation list, newest first (through the cache if one is set).
    Conversations {
        /// The user's uuid (or a seed user's handle).
        user_uuid: String,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
        /// Read the table even when a cache table is set.
        #[arg(long)]
        no_cache: bool,
    },
    /// Pattern A: a group's messages, newest first (through the cache if one is set).
    Messages {
        group_uuid: String,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
        /// Read the table even when a cache table is set.
        #[arg(long)]
        no_cache: bool,
    },
    /// Run the Lambda handler in-process on event files; prints each batch response as a JSON line.
    Replay {
        /// Lambda event JSON files, one event per file.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print each invocation's EMF metrics document to stderr.
        #[arg(long)]
        metrics: bool,
    },
    /// Pattern C: write a message to a group, as the app does (the function then moves the group rows).
    Send {
        /// The conversation's message_group_uuid.
        #[arg(long)]
        group: String,
        /// The sender, by uuid or handle (one of the seed's users).
        #[arg(long)]
        from: String,
        /// The message text.
        text: String,
    },
    /// Start a direct conversation: both group rows and the first message, in one transaction.
    NewConversation {
        /// The sender, by uuid or handle.
        #[arg(long)]
        from: String,
        /// The other participant, by uuid or handle.
        #[arg(long)]
        to: String,
        /// The first message's text.
        text: String,
    },
    /// The tables at the endpoint.
    ListTables,
    /// Delete the table and everything in it (only with --yes).
    Drop {
        /// Yes, delete it.
        #[arg(long)]
        yes: bool,
    },
    /// Every item of the table, or of one of its indexes.
    Scan {
        /// Scan this index instead of the table (e.g. message-group-sk-index).
        #[arg(long)]
        index: Option<String>,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
    },
    /// The table's stream triggering the function in-process, as the Lambda event source mapping does.
    Watch(WatchArgs),
    /// Run failed batches through the handler again: S3 destination objects (records included),
    /// SQS/SNS destination messages or `ddb watch` failures (ranges, read back from the stream).
    Redrive(RedriveArgs),
}

#[derive(Args)]
struct RedriveArgs {
    /// Files, folders (every file in them), or - for stdin: JSON, JSON lines or arrays of failure records.
    #[arg(required = true)]
    sources: Vec<PathBuf>,
    /// Most records per invocation [default: the template's BatchSize].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch_size: Option<u32>,
    /// The SAM template whose BatchSize bounds the batches.
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    /// Read the records and plan the moves, without writing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct WatchArgs {
    /// Where to start on the shards open now.
    #[arg(long, value_enum, default_value = "trim-horizon")]
    from: Position,
    /// Most records per invocation (BatchSize).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch_size: u32,
    /// Seconds to gather a batch (MaximumBatchingWindowInSeconds).
    #[arg(long, default_value_t = 1.0)]
    batching_window: f64,
    /// Split a batch in two when the function fails as a whole (BisectBatchOnFunctionError).
    #[arg(long)]
    bisect: bool,
    /// Retries before a failing range goes to the failures file; -1 retries for ever (MaximumRetryAttempts).
    #[arg(long, default_value_t = 5, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..=10_000))]
    max_retries: i64,
    /// JSON lines, one per range given up after its retries (stands in for the on-failure destination).
    #[arg(long, default_value = "ddb-watch-failures.jsonl")]
    failures_file: PathBuf,
    /// The SAM template whose FilterCriteria decide which records reach the function.
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    /// Pass every record to the function, ignoring the template's filter.
    #[arg(long, conflicts_with = "template")]
    no_filter: bool,
    /// Seconds before an invocation counts as failed (the function's Timeout).
    #[arg(long, default_value_t = 90.0)]
    timeout: f64,
    /// Drain what the stream holds now, then exit (non-zero if any range was given up).
    #[arg(long)]
    once: bool,
    /// Print each invocation's EMF metrics document to stderr.
    #[arg(long)]
    metrics: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Position {
    TrimHorizon,
    Latest,
}

impl WatchArgs {
    fn options(&self) -> Result<WatchOptions> {
        let seconds = |name: &str, value: f64| {
            Duration::try_from_secs_f64(value)
                .with_context(|| format!("--{name} {value}: not a number of seconds"))
        };
        Ok(WatchOptions {
            from: match self.from {
                Position::TrimHorizon => StartingPosition::TrimHorizon,
                Position::Latest => StartingPosition::Latest,
            },
            batch_size: self.batch_size as usize,
            batching_window: seconds("batching-window", self.batching_window)?,
            bisect: self.bisect,
            max_retries: u32::try_from(self.max_retries).ok(),
            failures_file: Some(self.failures_file.clone()),
            timeout: seconds("timeout", self.timeout)?,
            ..WatchOptions::default()
        })
    }
}

impl Cli {
    /// The Lambda's config, with the flags over the environment and the local endpoint as the default.
    fn config(&self) -> Result<Config> {
        let mut config = Config::from_env()?;
        match self.endpoint.as_deref() {
            // DynamoDB and DynamoDB Streams at their AWS endpoints (`ddb redrive` in production).
            Some(AWS_ENDPOINTS) => config.endpoint_url = None,
            Some(endpoint) => config.endpoint_url = Some(endpoint.to_owned()),
            None => {
                config
                    .endpoint_url
                    .get_or_insert_with(|| LOCAL_ENDPOINT.to_owned());
            }
        }
        if let Some(table) = &self.table {
            config.table_name = table.clone();
        }
        if let Some(cache) = &self.cache_table {
            config.cache_table_name = Some(cache.clone());
        }
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    lambda_runtime::tracing::init_default_subscriber_with_writer(std::io::stderr);
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ddb: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let config = cli.config()?;
    let endpoint = config
        .endpoint_url
        .clone()
        .unwrap_or_else(|| "AWS".to_owned());
    match cli.command {
        Command::SchemaLoad { cache } => {
            let client = messaging_stream::aws::dynamodb_client(&config).await;
            let created =
                schema::create_table(&client, &config.table_name, &config.group_index_name)
                    .await
                    .with_context(|| {
                        format!("creating table {} at {endpoint}", config.table_name)
                    })?;
            println!("table {}: {:?}", config.table_name, created);
            if cache {
                let table = config
                    .cache_table_name
                    .clone()
                    .unwrap_or_else(|| LOCAL_CACHE_TABLE.to_owned());
                let created = schema::create_cache_table(&client, &table)
                    .await
                    .with_context(|| format!("creating cache table {table} at {endpoint}"))?;
                println!("cache table {table}: {created:?} (time to live on expires_at)");
                if config.cache_table_name.is_none() {
                    eprintln!(
                        "ddb: reads use it with --cache-table {table} or CACHE_TABLE_NAME={table}"
                    );
                }
            }
        }
        Command::Seed => {
            let client = messaging_stream::aws::dynamodb_client(&config).await;
            let seeded = seed::seed(&client, &config.table_name)
                .await
                .with_context(|| format!("seeding table {} at {endpoint}", config.table_name))?;
            println!(
                "seeded {}: {} messages, {} group rows ({} already there)",
                config.table_name, seeded.messages, seeded.group_rows, seeded.skipped
            );
        }
        Command::Conversations {
            user_uuid,
            limit,
            no_cache,
        } => {
            let client = messaging_stream::aws::dynamodb_client(&config).await;
            // A seed user's handle is accepted for convenience; anything else is taken as a uuid.
            let user_uuid = write::user(&user_uuid).map_or(user_uuid, |u| u.uuid.to_owned());
            if let Some(reader) = cached_reader(&config, &client, no_cache) {
                let read = reader.conversations(&user_uuid, limit).await?;
                eprintln!("ddb: cache {} (conversations#{user_uuid})", read.served);
                return print_entries(&read.entries, cli.json);
            }
            let rows = queries::conversations(
                &client,
                &config.table_name,
                &user_uuid,
                limit.map(|l| l as usize),
            )
            .await?;
            print_items(
                &rows,
                cli.json,
                &["sk", "user_handle", "message_group_uuid", "message"],
            )?;
        }
        Command::Messages {
            group_uuid,
            limit,
            no_cache,
        } => {
            let client = messaging_stream::aws::dynamodb_client(&config).await;
            if let Some(reader) = cached_reader(&config, &client, no_cache) {
                let read = reader.messages(&group_uuid, limit).await?;
                eprintln!("ddb: cache {} (messages#{group_uuid})", read.served);
                return print_entries(&read.entries, cli.json);
            }
            let items = queries::messages(
                &client,
                &config.table_name,
                &group_uuid,
                limit.map(|l| l as usize),
            )
            .await?;
            print_items(&items, cli.json, &["sk", "user_handle", "message"])?;
        }
        Command::Replay { files, metrics } => {
            let app = App::from_config(config)
                .await
                .with_metrics(metrics_to_stderr(metrics)?);
            for file in files {
                let response = replay::replay_file(&app, &file).await?;
                println!("{}", serde_json::to_string(&response)?);
            }
        }
        Command::Send { group, from, text } => {
            let client = messaging_stream::aws::dynamodb_client(&config).await;
            let from = write::user(&from)?;
            let sent = write::send(&client, &config.table_name, &group, &from, &text).await?;
            print_written(&sent, cli.json, "sent")?;
        }
        Command::NewConversation { from, to, text } => {
            let client = messaging_stream::aws::dynamodb_client(&config).await;
            let (from, to) = (write::user(&from)?, write::user(&to)?);
            let created =
                write::new_conversation(&client, &config.table_name, &from, &to, &text).await?;
            print_written(&created, cli.json, "new conversation")?;
        }
        Command::ListTables => {
            let client = messaging_stream::aws::dynamodb_client(&config).await;
            for table in admin::list_tables(&client).await? {
                if cli.json {
                    println!("{}", serde_json::json!({ "table": table }));
                } else {
                    println!("{table}");
                }
            }
        }
        Command::Drop { yes } => {
            if !yes {
                bail!(
                    "refusing to drop table {} at {endpoint}: add --yes to delete it and all its items",
                    config.table_name
                );
            }
            let client = messaging_stream::aws::dynamodb_client(&config).await;
            admin::drop_table(&client, &config.table_name).await?;
            if cli.json {
                println!("{}", serde_json::json!({ "dropped": config.table_name }));
            } else {
                println!("dropped table {}", config.table_name);
            }
        }
        Command::Scan { index, limit } => {
            let client = messaging_stream::aws::dynamodb_client(&config).await;
            let items = admin::scan(
                &client,
                &config.table_name,
                index.as_deref(),
                limit.map(|l| l as usize),
            )
            .await?;
            print_items(
                &items,
                cli.json,
                &["pk", "sk", "message_group_uuid", "user_handle", "message"],
            )?;
        }
        Command::Watch(args) => watch(config, &args, cli.json).await?,
        Command::Redrive(args) => redrive(config, &args, cli.json).await?,
    }
    Ok(())
}

/// The read-through reader when a cache table is set and not bypassed.
fn cached_reader(
    config: &Config,
    client: &aws_sdk_dynamodb::Client,
    no_cache: bool,
) -> Option<Reader> {
    let table = config.cache_table_name.as_ref().filter(|_| !no_cache)?;
    let cache = DynamoCache::new(client.clone(), table.clone());
    Some(
        Reader::new(client.clone(), config.table_name.clone())
            .with_cache(Arc::new(cache), config.cache_ttl),
    )
}

/// Prints the app's list entries (docs/CACHE.md) as JSON lines or columns.
fn print_entries(entries: &[Entry], json: bool) -> Result<()> {
    let items: Vec<Item> = entries
        .iter()
        .map(serde_dynamo::to_item)
        .collect::<Result<_, _>>()?;
    print_items(&items, json, &["created_at", "handle", "uuid", "message"])
}

/// `ddb watch`: builds the trigger, prints progress on stderr, stops on Ctrl-C (or SIGTERM).
async fn watch(config: Config, args: &WatchArgs, json: bool) -> Result<()> {
    let options = args.options()?;
    let streams = stream::client(&config).await;
    let app = App::from_config(config.clone())
        .await
        .with_metrics(metrics_to_stderr(args.metrics)?);
    let mut trigger = Trigger::new(streams, app, &config.table_name, options)
        .await
        .with_context(|| format!("watching table {}", config.table_name))?;
    let filter = if args.no_filter {
        "none".to_owned()
    } else {
        let filter = EventFilter::from_template(&args.template).with_context(|| {
            format!(
                "reading the event filter from {} (or pass --no-filter)",
                args.template.display()
            )
        })?;
        let described = format!("{} of {}", filter.event(), args.template.display());
        trigger = trigger.with_filter(filter);
        described
    };
    eprintln!(
        "ddb watch: {} -> messaging-stream handler (filter: {filter})",
        trigger.stream_arn()
    );
    let stats = trigger.stats();
    let progress = tokio::spawn(async move {
        let mut shown = StatsSnapshot::default();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = stats.snapshot();
            if now != shown {
                eprintln!("ddb watch: {now}");
                shown = now;
            }
        }
    });
    let result = if args.once {
        trigger.drain().await
    } else {
        trigger.run_until(shutdown()).await
    };
    progress.abort();
    let stats = result?;
    if json {
        println!("{}", serde_json::to_string(&stats)?);
    } else {
        println!("{}: {stats}", if args.once { "drained" } else { "stopped" });
    }
    if args.once && stats.ranges_given_up > 0 {
        bail!(
            "{} records given up after their retries: see {}",
            stats.records_given_up,
            args.failures_file.display()
        );
    }
    Ok(())
}

/// The handler's metrics for a local run: off unless asked for, then to stderr (named as the
/// environment says, `METRICS` aside: the flag is the switch here).
fn metrics_to_stderr(asked: bool) -> Result<Metrics> {
    if !asked {
        return Ok(Metrics::off());
    }
    let config = MetricsConfig {
        enabled: true,
        ..MetricsConfig::from_env()?
    };
    Ok(Metrics::new(config, Output::Stderr))
}

/// `ddb redrive`: one report line per failure record; fails when anything still fails.
async fn redrive(config: Config, args: &RedriveArgs, json: bool) -> Result<()> {
    let batch_size = match args.batch_size {
        Some(size) => size as usize,
        None => redrive::template_batch_size(&args.template)?,
    };
    let records = failure_records::read_sources(&args.sources).await?;
    let streams = stream::client(&config).await;
    let app = App::from_config(config).await;
    let options = redrive::RedriveOptions {
        batch_size,
        dry_run: args.dry_run,
    };
    let reports = redrive::redrive(&app, &streams, records, &options).await;
    for report in &reports {
        if json {
            println!("{}", serde_json::to_string(report)?);
        } else {
            println!("{report}");
        }
    }
    let failing: usize = reports.iter().map(|r| r.still_failing).sum();
    if failing > 0 {
        bail!(
            "{failing} still failing over {} of {} failure records (reasons above)",
            reports.iter().filter(|r| r.failed()).count(),
            reports.len()
        );
    }
    if !json {
        let applied: usize = reports.iter().map(|r| r.rows_applied).sum();
        println!(
            "{} {} failure records: {} rows {}",
            if args.dry_run { "planned" } else { "redrove" },
            reports.len(),
            applied,
            if args.dry_run { "would move" } else { "moved" }
        );
    }
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn print_written(written: &write::Written, json: bool, what: &str) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(written)?);
    } else {
        println!(
            "{what}: group {} at {} (message {})",
            written.message_group_uuid, written.created_at, written.message_uuid
        );
    }
    Ok(())
}

/// Prints items as JSON lines (plain attribute values) or as aligned columns for a person.
fn print_items(items: &[Item], json: bool, columns: &[&str]) -> Result<()> {
    if json {
        for item in items {
            let value: serde_json::Value = serde_dynamo::from_item(item.clone())?;
            println!("{value}");
        }
        return Ok(());
    }
    let cell = |item: &Item, column: &str| -> String {
        item.get(column)
            .and_then(|v| v.as_s().ok().cloned())
            .unwrap_or_default()
    };
    let widths: Vec<usize> = columns
        .iter()
        .map(|c| {
            items
                .iter()
                .map(|i| cell(i, c).chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(columns.iter().map(|c| c.to_string()).collect());
    for item in items {
        line(columns.iter().map(|c| cell(item, c)).collect());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_aws_leaves_the_sdk_its_own_endpoints() {
        let config = |args: &[&str]| {
            Cli::parse_from(["ddb"].iter().chain(args).copied())
                .config()
                .unwrap()
                .endpoint_url
        };
        assert_eq!(
            config(&["--endpoint", "aws", "list-tables"]),
            None,
            "DynamoDB Streams must not be sent to DynamoDB's endpoint"
        );
        assert_eq!(
            config(&["--endpoint", "http://127.0.0.1:9", "list-tables"]).as_deref(),
            Some("http://127.0.0.1:9")
        );
        if std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_none() {
            assert_eq!(config(&["list-tables"]).as_deref(), Some(LOCAL_ENDPOINT));
        }
    }
}
