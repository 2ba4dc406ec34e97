//! `ddb`: the developer CLI for the Cruddur table on DynamoDB Local (or any endpoint).
//!
//! Thin: parses arguments, builds clients from the same [`Config`] as the Lambda, and calls the
//! library. Results go to stdout; logs go to stderr.

use anyhow::{bail, Context as _, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ddb::commands::render::{self, Style};
use ddb::commands::{
    self, admin, queries, redrive, replay, sample, schema, seed, write, LocalError,
};
use ddb::event_source_mapping::failure_records;
use ddb::event_source_mapping::mapping::{self, Settings};
use ddb::event_source_mapping::watch::{StartingPosition, StatsSnapshot, Trigger, WatchOptions};
use ddb::filter::EventFilter;
use ddb::reads::{conversation_entry, message_entry, ttl_from_env, Entry, Reader};
use ddb::template;
use messaging_stream::aws::{Connection, Setup};
use messaging_stream::cache::dynamo::DynamoCache;
use messaging_stream::metrics::{Metrics, MetricsConfig, Output};
use messaging_stream::model::{
    CONVERSATIONS_PREFIX, GROUP_ATTR, GROUP_PK_PREFIX, MESSAGES_PREFIX, MESSAGE_ATTR,
    MESSAGE_PK_PREFIX, PK_ATTR, SK_ATTR, USER_HANDLE_ATTR,
};
use messaging_stream::plan::Item;
use messaging_stream::{App, Config};
use std::fmt::Display;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `ddb replay`: the response named a failed record (Lambda would retry from it).
const EXIT_FAILED_RECORD: u8 = 3;
/// `ddb replay`: an input could not be read or was not JSON.
const EXIT_UNREADABLE: u8 = 4;

/// Where the Makefile runs DynamoDB Local.
const LOCAL_ENDPOINT: &str = "http://127.0.0.1:8000";
/// `--endpoint aws`: AWS's own endpoints (DynamoDB and DynamoDB Streams differ there), whatever the
/// environment and the profile configure.
const AWS_ENDPOINTS: &str = "aws";
/// ddb's first retry waits about this long, then twice as long each time (the SDK's back-off): a
/// person waits on ddb, and a refused connection is not worth seconds of back-off.
const RETRY_INITIAL_BACKOFF: Duration = Duration::from_millis(100);

/// The one table of exit codes (`ddb --help`; README's is the same).
const EXIT_STATUS: &str = "\
Exit status:
  0  done
  1  an error, said on stderr; a set-up problem (nothing answers at the endpoint, credentials
     refused or missing, the table or its index missing) comes with its fix on the next line,
     for every command, replay included
  2  the arguments are not valid
  3  replay: DynamoDB answered and a response named a failed record (batchItemFailures, which
     Lambda would retry from); local status: DynamoDB Local is not running
  4  replay: an input could not be read or was not JSON";
/// The cache table `schema-load --cache` creates when none is named.
const LOCAL_CACHE_TABLE: &str = "cruddur-cache-local";

#[derive(Parser)]
#[command(
    name = "ddb",
    version,
    about = "Run the Cruddur messaging table and its stream consumer locally",
    after_help = EXIT_STATUS
)]
struct Cli {
    /// DynamoDB endpoint, as the AWS CLI's, or `aws` for AWS's own endpoints whatever the
    /// environment and the profile say [env: AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL; the
    /// profile's endpoint_url; default: http://127.0.0.1:8000]
    #[arg(long = "endpoint-url", visible_alias = "endpoint", global = true)]
    endpoint: Option<String>,
    /// AWS region [env: AWS_REGION; the profile's; default with an endpoint: us-east-1]
    #[arg(long, global = true)]
    region: Option<String>,
    /// Named profile of ~/.aws/config and ~/.aws/credentials [env: AWS_PROFILE]
    #[arg(long, global = true)]
    profile: Option<String>,
    /// Table name [env: TABLE_NAME; default: cruddur-messages]
    #[arg(long, global = true)]
    table: Option<String>,
    /// Print JSON lines instead of a table (items: numbers exact, binary as base64, sets as arrays)
    #[arg(long, global = true)]
    json: bool,
    /// With --json, items as DynamoDB JSON, as the AWS CLI prints them ({"S": ...})
    #[arg(long, global = true)]
    raw: bool,
    /// Say more on stderr: the SDK's whole error context, debug logs
    #[arg(short, long, global = true)]
    verbose: bool,
    /// The read-path cache table [env: CACHE_TABLE_NAME; default: none, reads go to the table]
    #[arg(long, global = true)]
    cache_table: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the table (pk/sk, the group GSI, a NEW_IMAGE stream), or check an existing one.
    ///
    /// An existing table is compared with what the function needs (keys, the GSI, the stream):
    /// every difference is listed, and the exit status is non-zero unless there is none.
    SchemaLoad {
        /// Repair a missing GSI or stream with UpdateTable (a KEYS_ONLY stream is replaced).
        #[arg(long)]
        fix: bool,
        /// Also create the cache table (key id, TTL on expires_at): --cache-table, CACHE_TABLE_NAME,
        /// or cruddur-cache-local.
        #[arg(long)]
        cache: bool,
    },
    /// Write users, conversations and messages (idempotent).
    Seed,
    /// Pattern B: a user's conversation list, newest first, as the app returns it.
    ///
    /// Each entry has the app's five fields (uuid: the group, display_name and handle: the other
    /// participant, message, created_at), whether read through the cache or from the table.
    Conversations {
        /// The user's id (or a seed user's handle).
        user_uuid: String,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
        /// Read the table even when a cache table is set.
        #[arg(long)]
        no_cache: bool,
        /// Print the GRP# rows themselves (every attribute), read from the table, not the app's entries.
        #[arg(long)]
        items: bool,
    },
    /// Pattern A: a group's messages, newest first, as the app returns them.
    ///
    /// Each entry has the app's five fields (uuid: the message, display_name and handle: the
    /// sender, message, created_at), whether read through the cache or from the table.
    Messages {
        group_uuid: String,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
        /// Read the table even when a cache table is set.
        #[arg(long)]
        no_cache: bool,
        /// Print the MSG# items themselves (every attribute), read from the table, not the app's entries.
        #[arg(long)]
        items: bool,
    },
    /// Run the Lambda handler in-process on event files; prints each batch response as a JSON line.
    ///
    /// Exit status: 0 every batch went through; 3 DynamoDB answered and a response named a
    /// failed record (batchItemFailures); 4 an input could not be read or was not JSON; 1 any
    /// other error: an invocation error, or a set-up problem (DynamoDB unreachable, credentials
    /// refused, the table or its index missing), with its fix.
    Replay {
        /// Lambda event JSON files, one event per file; `-` reads standard input.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print each invocation's EMF metrics document to stderr.
        #[arg(long)]
        metrics: bool,
    },
    /// Print a sample Lambda DynamoDB Streams event (as `sam local generate-event`), for `replay -`.
    Event(EventArgs),
    /// Pattern C: write a message to a group, as the app does (the function then moves the group rows).
    ///
    /// The text comes from exactly one of: the TEXT argument (`-` reads standard input), --text, or
    /// --text-file. From standard input or a file it must be UTF-8, and one final line break is dropped.
    Send {
        /// The conversation's message_group_uuid.
        #[arg(long)]
        group: String,
        /// The sender: any id the group's rows name (a row's owner or its other participant:
        /// uuid, ULID, Cognito sub...), or a seed user's handle. Anyone else is refused.
        #[arg(long)]
        from: String,
        /// The sender's display name [default: as the group's rows describe the sender]
        #[arg(long)]
        name: Option<String>,
        /// The sender's handle [default: as the group's rows describe the sender]
        #[arg(long)]
        handle: Option<String>,
        /// The message's instant (its sort key, written as given; any ISO form the function
        /// accepts) [default: now, in UTC]
        #[arg(long)]
        at: Option<String>,
        /// The message text; `-` reads it from standard input (`@name` is sent as written).
        #[arg(required_unless_present_any = ["text_flag", "text_file"], conflicts_with_all = ["text_flag", "text_file"])]
        text: Option<String>,
        /// The message text, exactly as given (`--text -` sends a dash).
        #[arg(
            long = "text",
            id = "text_flag",
            value_name = "TEXT",
            conflicts_with = "text_file"
        )]
        text_flag: Option<String>,
        /// Read the message text from FILE.
        #[arg(long, value_name = "FILE")]
        text_file: Option<PathBuf>,
    },
    /// Start a direct conversation: both group rows and the first message, in one transaction.
    NewConversation {
        /// The sender: any user's uuid, or a seed user's handle.
        #[arg(long)]
        from: String,
        /// The sender's display name (needed unless a seed user)
        #[arg(long)]
        name: Option<String>,
        /// The sender's handle (needed unless a seed user)
        #[arg(long)]
        handle: Option<String>,
        /// The other participant: any user's uuid, or a seed user's handle.
        #[arg(long)]
        to: String,
        /// The other participant's display name (needed unless a seed user)
        #[arg(long)]
        to_name: Option<String>,
        /// The other participant's handle (needed unless a seed user)
        #[arg(long)]
        to_handle: Option<String>,
        /// The first message's text.
        text: String,
    },
    /// The tables at the endpoint.
    ListTables,
    /// Delete the table and everything in it (only with --yes).
    Drop {
        /// Yes, delete it.
        #[arg(short, long)]
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
    /// SQS/SNS destination messages or `ddb watch` failures (their records, or ranges read back
    /// from the stream).
    Redrive(RedriveArgs),
    /// The shared DynamoDB Local (as `make dynamodb-local`): 127.0.0.1:8000, -sharedDb, by PID.
    Local {
        #[command(subcommand)]
        action: LocalAction,
    },
}

impl Command {
    /// Whether it writes to the table, itself or through the handler (it then says where, once).
    fn writes(&self) -> bool {
        match self {
            Command::SchemaLoad { .. }
            | Command::Seed
            | Command::Send { .. }
            | Command::NewConversation { .. }
            | Command::Replay { .. }
            | Command::Watch(_) => true,
            Command::Drop { yes } => *yes,
            Command::Redrive(args) => !args.dry_run,
            Command::Conversations { .. }
            | Command::Messages { .. }
            | Command::Event(_)
            | Command::ListTables
            | Command::Scan { .. }
            | Command::Local { .. } => false,
        }
    }
}

#[derive(Args)]
struct RedriveArgs {
    /// Files, folders (every file in them; files that are not failure records are skipped, and
    /// named on stderr), or - for stdin: JSON, JSON lines or arrays of failure records.
    #[arg(required = true)]
    sources: Vec<PathBuf>,
    /// Most records per invocation [default: the template's BatchSize].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch_size: Option<u32>,
    /// The SAM template whose BatchSize bounds the batches [default: template.yaml here or in the
    /// nearest folder above]
    #[arg(long)]
    template: Option<PathBuf>,
    /// Run the handler on the records without writing anything (its writes kept in memory): the
    /// report counts what the real run would do.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Subcommand, Clone, Copy)]
enum LocalAction {
    /// Start it (data in .cache/dynamodb-local-data of this checkout, unless --in-memory).
    Start {
        /// Keep nothing on disk.
        #[arg(long)]
        in_memory: bool,
        #[arg(long, default_value_t = 8000)]
        port: u16,
    },
    /// Stop it, by its PID.
    Stop,
    /// Say whether it runs (exit 3 if not).
    Status {
        #[arg(long, default_value_t = 8000)]
        port: u16,
    },
}

/// Every setting is the template's event source mapping's unless a flag overrides it; the first
/// line on stderr says which settings are in force and where each came from.
#[derive(Args)]
struct WatchArgs {
    /// The SAM/CloudFormation template [default: template.yaml here or in the nearest folder above]
    #[arg(long)]
    template: Option<PathBuf>,
    /// The function (logical id, or Function.Event, or a mapping's id) when the template has several
    #[arg(long)]
    function: Option<String>,
    /// Where to start on the shards open now (StartingPosition).
    #[arg(long, value_enum)]
    from: Option<Position>,
    /// Most records per invocation (BatchSize: 1 to 10000).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch_size: Option<u32>,
    /// Seconds to gather a batch (MaximumBatchingWindowInSeconds: 0 to 300).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=300))]
    batching_window: Option<u32>,
    /// Split a batch in two when the function fails as a whole (BisectBatchOnFunctionError on).
    #[arg(long, overrides_with = "no_bisect")]
    bisect: bool,
    /// Do not split failing batches (BisectBatchOnFunctionError off).
    #[arg(long)]
    no_bisect: bool,
    /// Retries before a failing range goes to the failures file; -1 for ever (MaximumRetryAttempts).
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..=10_000))]
    max_retries: Option<i64>,
    /// Records older than this many seconds are given up unprocessed; -1 never
    /// (MaximumRecordAgeInSeconds: -1 or 60 to 604800).
    #[arg(long, allow_negative_numbers = true, value_parser = record_age)]
    max_record_age: Option<i64>,
    /// Batches of one shard at once, a key's records always in one (ParallelizationFactor: 1 to 10).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10))]
    parallelization_factor: Option<u32>,
    /// Pass every record to the function, ignoring the template's FilterCriteria (with no
    /// template at all, Lambda's defaults are used).
    #[arg(long)]
    no_filter: bool,
    /// JSON lines, one per range given up (the on-failure destination; format: src/event_source_mapping/failures.rs).
    #[arg(long, default_value = "ddb-watch-failures.jsonl")]
    failures_file: PathBuf,
    /// Keep each shard's position in this file: a restart resumes after what was acknowledged.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Seconds before an invocation counts as failed (the function's Timeout: 1 to 900).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=900))]
    timeout: Option<u32>,
    /// Drain what the stream holds now, then exit (non-zero if any range was given up).
    #[arg(long)]
    once: bool,
    /// Print each invocation's EMF metrics document to stderr.
    #[arg(long)]
    metrics: bool,
}

fn record_age(text: &str) -> Result<i64, String> {
    match text.parse::<i64>() {
        Ok(age) if age == -1 || (60..=604_800).contains(&age) => Ok(age),
        _ => Err("Lambda takes -1 (for ever) or 60 to 604800 seconds".to_owned()),
    }
}

#[derive(Args)]
struct EventArgs {
    /// The change: a new message, an edit, or a deleted message.
    #[arg(value_enum)]
    change: ChangeKind,
    /// The message's group (message_group_uuid).
    #[arg(long)]
    group: String,
    /// The message's sort key (any ISO form the function accepts).
    #[arg(long)]
    at: String,
    /// The message text (INSERT and MODIFY).
    #[arg(long, default_value = "hello from ddb event")]
    text: String,
    /// The sender: a user's uuid or a seed user's handle [default: andrewbrown]
    #[arg(long)]
    from: Option<String>,
    /// Records in the event: the first at --at, each next one a second later.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    count: u32,
}

#[derive(Clone, Copy, ValueEnum)]
enum ChangeKind {
    Insert,
    Modify,
    Remove,
}

#[derive(Clone, Copy, ValueEnum)]
enum Position {
    TrimHorizon,
    Latest,
}

impl WatchArgs {
    /// The template's mapping (or Lambda's defaults without one), each flag over its setting.
    fn settings(&self) -> Result<Settings> {
        let mut settings = match template::locate(self.template.as_deref()) {
            Ok(path) => mapping::read(&path, self.function.as_deref()).with_context(|| {
                "the watch settings come from the template's stream event (or pass --no-filter to use \
                 Lambda's defaults without one)"
            })?,
            Err(_) if self.no_filter => Settings::default(),
            Err(error) => bail!("{error} (or --no-filter to use Lambda's defaults)"),
        };
        settings
            .starting_position
            .override_with(self.from.map(|from| match from {
                Position::TrimHorizon => mapping::Start::TrimHorizon,
                Position::Latest => mapping::Start::Latest,
            }));
        settings.batch_size.override_with(self.batch_size);
        settings
            .maximum_batching_window_seconds
            .override_with(self.batching_window);
        let bisect = match (self.bisect, self.no_bisect) {
            (true, _) => Some(true),
            (false, true) => Some(false),
            _ => None,
        };
        settings
            .bisect_batch_on_function_error
            .override_with(bisect);
        settings
            .maximum_retry_attempts
            .override_with(self.max_retries);
        settings
            .maximum_record_age_seconds
            .override_with(self.max_record_age);
        settings
            .parallelization_factor
            .override_with(self.parallelization_factor);
        settings.timeout_seconds.override_with(self.timeout);
        if self.no_filter {
            settings.filters.override_with(Some(Vec::new()));
        }
        settings.validate()?;
        Ok(settings)
    }

    fn options(&self, settings: &Settings) -> WatchOptions {
        let seconds = |value: i64| u64::try_from(value).ok().map(Duration::from_secs);
        WatchOptions {
            from: match settings.starting_position.value {
                mapping::Start::TrimHorizon => StartingPosition::TrimHorizon,
                mapping::Start::Latest => StartingPosition::Latest,
            },
            batch_size: settings.batch_size.value as usize,
            batching_window: Duration::from_secs(u64::from(
                settings.maximum_batching_window_seconds.value,
            )),
            bisect: settings.bisect_batch_on_function_error.value,
            max_retries: u32::try_from(settings.maximum_retry_attempts.value).ok(),
            max_record_age: seconds(settings.maximum_record_age_seconds.value),
            parallelization: settings.parallelization_factor.value as usize,
            failures_file: Some(self.failures_file.clone()),
            checkpoint: self.checkpoint.clone(),
            timeout: Duration::from_secs(u64::from(settings.timeout_seconds.value)),
            ..WatchOptions::default()
        }
    }
}

impl Cli {
    /// The Lambda's config, with the flags over the environment.
    fn config(&self) -> Result<Config> {
        let flag_endpoint = self.endpoint.is_some();
        let aws = self.endpoint.as_deref() == Some(AWS_ENDPOINTS);
        let mut config = Config::from_lookup(|name| {
            // A flag wins over the environment, even over a bad value there.
            let endpoint_variable =
                matches!(name, "AWS_ENDPOINT_URL_DYNAMODB" | "AWS_ENDPOINT_URL");
            if flag_endpoint && endpoint_variable {
                return None;
            }
            std::env::var(name).ok()
        })?;
        match &self.endpoint {
            // DynamoDB and DynamoDB Streams at their AWS endpoints (`ddb redrive` in production).
            Some(_) if aws => config.endpoint_url = None,
            Some(endpoint) => {
                messaging_stream::aws::check_endpoint(endpoint)?;
                config.endpoint_url = Some(endpoint.clone());
            }
            None => {}
        }
        if let Some(table) = &self.table {
            config.table_name = table.clone();
        }
        if let Some(cache) = &self.cache_table {
            config.cache_table_name = Some(cache.clone());
        }
        Ok(config)
    }

    fn connection(&self, config: &Config) -> Connection {
        let aws_endpoints = self.endpoint.as_deref() == Some(AWS_ENDPOINTS);
        Connection {
            profile: self.profile.clone(),
            region: self.region.clone(),
            default_endpoint: (!aws_endpoints).then(|| LOCAL_ENDPOINT.to_owned()),
            aws_endpoints,
            retry: Some(
                config
                    .retry_config()
                    .with_initial_backoff(RETRY_INITIAL_BACKOFF),
            ),
        }
    }

    fn style(&self) -> Option<Style> {
        match (self.json, self.raw) {
            (false, _) => None,
            (true, false) => Some(Style::Plain),
            (true, true) => Some(Style::Dynamo),
        }
    }
}

/// A failure whose words were already printed, or that only sets the exit status.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Exit {
    code: u8,
    message: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    messaging_stream::logging::init_tool(cli.verbose);
    let verbose = cli.verbose;
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if let Some(exit) = error.downcast_ref::<Exit>() {
                if !exit.message.is_empty() {
                    eprintln!("ddb: {}", exit.message);
                }
                return ExitCode::from(exit.code);
            }
            eprintln!("ddb: {}", said_once(&error));
            if verbose {
                if let Some(local) = error.chain().find_map(|e| e.downcast_ref::<LocalError>()) {
                    eprintln!("ddb: the SDK's whole error: {}", local.detail);
                }
            }
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each cause said once: a cause whose text the error before it
/// already includes (`cannot read F: No such file`, then `No such file`) is not repeated.
fn said_once(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

/// Prints one line on stdout; a closed stdout (`ddb scan | head -1`) ends ddb quietly.
fn emit(line: impl Display) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        result => Ok(result?),
    }
}

async fn run(cli: Cli) -> Result<()> {
    let config = cli.config()?;
    if let Command::Event(args) = &cli.command {
        return event(args, &config);
    }
    if let Command::Local { action } = cli.command {
        return local(action);
    }
    let connection = cli.connection(&config);
    if connection.aws_endpoints
        && messaging_stream::aws::configured_region(&connection)
            .await
            .is_none()
    {
        bail!("--endpoint aws needs a region: --region, AWS_REGION or the profile's region");
    }
    let resolved = messaging_stream::aws::resolve(&config, &connection).await;
    if let Some(endpoint) = &resolved.endpoint {
        messaging_stream::aws::check_endpoint(endpoint)?;
    }
    let region = resolved
        .sdk
        .region()
        .map_or_else(|| "(none)".to_owned(), ToString::to_string);
    let endpoint = messaging_stream::aws::dynamodb_endpoint(&resolved.sdk)
        .await
        .map_err(|e| anyhow::anyhow!("no DynamoDB endpoint for region {region}: {e}"))?;
    tracing::debug!(endpoint = %endpoint, region = %region, "ddb connects");
    // Said once, before anything is written, so that production is never written by surprise
    // (watch says it after its settings, which stay its first line).
    let writing = format!(
        "ddb: writing to table {} at {endpoint} (region {region})",
        config.table_name
    );
    if cli.command.writes() && !matches!(cli.command, Command::Watch(_)) {
        eprintln!("{writing}");
    }
    let client = aws_sdk_dynamodb::Client::from_conf(
        messaging_stream::aws::dynamodb_config(&resolved.sdk).build(),
    );
    // The handler's app on this client; with a cache table set, it invalidates that cache.
    let app = || {
        let store = messaging_stream::store::Store::new(client.clone(), &config);
        let app = App::new(store, config.clone());
        match config.cache_table_name.clone() {
            Some(table) => app.with_cache(Arc::new(DynamoCache::new(client.clone(), table))),
            None => app,
        }
    };
    let json = cli.json;
    let style = cli.style();
    let table_given = cli.table.is_some();
    let table = config.table_name.clone();
    match cli.command {
        Command::SchemaLoad { fix, cache } => {
            if cache {
                let cache_table = config
                    .cache_table_name
                    .clone()
                    .unwrap_or_else(|| LOCAL_CACHE_TABLE.to_owned());
                let created = schema::create_cache_table(&client, &cache_table).await?;
                emit(if json {
                    serde_json::json!({"cache_table": cache_table, "status": format!("{created:?}")})
                        .to_string()
                } else {
                    format!("cache table {cache_table}: {created:?} (time to live on expires_at)")
                })?;
                if config.cache_table_name.is_none() {
                    eprintln!(
                        "ddb: reads use it with --cache-table {cache_table} or CACHE_TABLE_NAME={cache_table}"
                    );
                }
            }
            let created = schema::create_table(&client, &table, &config.group_index_name).await?;
            if created == schema::Created::New {
                return emit(if json {
                    serde_json::json!({"table": table, "status": "created"}).to_string()
                } else {
                    format!(
                        "table {table}: created (pk/sk, index {}, NEW_IMAGE stream)",
                        config.group_index_name
                    )
                });
            }
            let index = &config.group_index_name;
            let differences = schema::check(&client, &table, index).await?;
            let fixable = differences.iter().all(schema::Difference::fixable);
            let fixed = if fix && fixable && !differences.is_empty() {
                schema::fix(&client, &table, index, &differences).await?
            } else {
                Vec::new()
            };
            let status = match (differences.is_empty(), fixed.is_empty()) {
                (true, _) => "matches",
                (false, false) => "fixed",
                (false, true) => "differs",
            };
            if json {
                emit(serde_json::json!({
                    "table": table,
                    "status": status,
                    "differences": differences,
                    "fixed": fixed,
                }))?;
            } else if differences.is_empty() {
                emit(format!(
                    "table {table}: already there, as the function needs it"
                ))?;
            } else {
                emit(format!(
                    "table {table}: already there, and differs from what the function needs:"
                ))?;
                for difference in &differences {
                    emit(format!("  - {difference}"))?;
                }
                for done in &fixed {
                    emit(format!("fixed: {done}"))?;
                }
            }
            if status == "differs" {
                let message = if !fixable {
                    format!("table {table} cannot be fixed in place: make another (--table NAME) or drop it and run schema-load again")
                } else {
                    format!("table {table} is not as the function needs it: run ddb schema-load --fix --table {table}")
                };
                return Err(Exit { code: 1, message }.into());
            }
        }
        Command::Seed => {
            let seeded = seed::seed(&client, &table).await?;
            emit(if json {
                serde_json::json!({
                    "table": table,
                    "messages": seeded.messages,
                    "group_rows": seeded.group_rows,
                    "already_there": seeded.skipped,
                })
                .to_string()
            } else {
                format!(
                    "seeded {table}: {} messages, {} group rows ({} already there)",
                    seeded.messages, seeded.group_rows, seeded.skipped
                )
            })?;
        }
        Command::Conversations {
            user_uuid,
            limit,
            no_cache,
            items,
        } => {
            // A seed user's handle is accepted for convenience; anything else is taken as an id.
            let user_uuid = write::user(&user_uuid).map_or(user_uuid, |u| u.uuid.to_owned());
            let nothing = || {
                anyhow::anyhow!(
                    "nothing found for user {user_uuid:?} in table {table}: no conversations \
                     ({GROUP_PK_PREFIX}{user_uuid} has no rows; give a user's id, or a seed user's handle)"
                )
            };
            if items {
                let rows =
                    queries::conversations(&client, &table, &user_uuid, limit.map(|l| l as usize))
                        .await?;
                if rows.is_empty() {
                    return Err(nothing());
                }
                return print_items(
                    &rows,
                    style,
                    &[SK_ATTR, USER_HANDLE_ATTR, GROUP_ATTR, MESSAGE_ATTR],
                );
            }
            let entries = match cached_reader(&config, &client, no_cache)? {
                Some(reader) => {
                    let read = reader.conversations(&user_uuid, limit).await?;
                    eprintln!(
                        "ddb: cache {} ({CONVERSATIONS_PREFIX}{user_uuid})",
                        read.served
                    );
                    read.entries
                }
                None => {
                    queries::conversations(&client, &table, &user_uuid, limit.map(|l| l as usize))
                        .await?
                        .iter()
                        .map(conversation_entry)
                        .collect()
                }
            };
            if entries.is_empty() {
                return Err(nothing());
            }
            print_entries(&entries, style)?;
        }
        Command::Messages {
            group_uuid,
            limit,
            no_cache,
            items,
        } => {
            let nothing = || {
                anyhow::anyhow!(
                    "nothing found for group {group_uuid:?} in table {table}: no messages \
                     ({MESSAGE_PK_PREFIX}{group_uuid} has no items)"
                )
            };
            if items {
                let items =
                    queries::messages(&client, &table, &group_uuid, limit.map(|l| l as usize))
                        .await?;
                if items.is_empty() {
                    return Err(nothing());
                }
                return print_items(&items, style, &[SK_ATTR, USER_HANDLE_ATTR, MESSAGE_ATTR]);
            }
            let entries = match cached_reader(&config, &client, no_cache)? {
                Some(reader) => {
                    let read = reader.messages(&group_uuid, limit).await?;
                    eprintln!("ddb: cache {} ({MESSAGES_PREFIX}{group_uuid})", read.served);
                    read.entries
                }
                None => queries::messages(&client, &table, &group_uuid, limit.map(|l| l as usize))
                    .await?
                    .iter()
                    .map(message_entry)
                    .collect(),
            };
            if entries.is_empty() {
                return Err(nothing());
            }
            print_entries(&entries, style)?;
        }
        Command::Replay { files, metrics } => {
            let app = app().with_metrics(metrics_to_stderr(metrics)?);
            let mut failed_record = false;
            for file in files {
                let (response, summary) = match replay::replay_file_with_summary(&app, &file).await
                {
                    Ok(replayed) => replayed,
                    Err(error) if error.is_unreadable() => {
                        return Err(Exit {
                            code: EXIT_UNREADABLE,
                            message: error.to_string(),
                        }
                        .into())
                    }
                    Err(error) => return Err(error.into()),
                };
                failed_record |= !response.batch_item_failures.is_empty();
                emit(serde_json::to_string(&response)?)?;
                // A failure of the set-up says nothing about the records: 1 with its fix, not 3.
                if let Some(&setup) = summary.setup_errors.first() {
                    let about = match setup {
                        Setup::MissingCacheTable => config.cache_table_name.as_deref(),
                        _ => Some(table.as_str()),
                    };
                    let input = if file.as_os_str() == "-" {
                        "standard input".to_owned()
                    } else {
                        file.display().to_string()
                    };
                    return Err(Exit {
                        code: 1,
                        message: format!(
                            "{input}: {setup} ({} of {} groups failed on it; no record is at fault)\n  {}",
                            summary.setup_errors.len(),
                            summary.counts.groups,
                            commands::hint(setup, about)
                        ),
                    }
                    .into());
                }
            }
            if failed_record {
                return Err(Exit {
                    code: EXIT_FAILED_RECORD,
                    message: "a response named a failed record (batchItemFailures): Lambda would retry from it".into(),
                }
                .into());
            }
        }
        Command::Event(_) | Command::Local { .. } => unreachable!("handled before connecting"),
        Command::Send {
            group,
            from,
            name,
            handle,
            at,
            text,
            text_flag,
            text_file,
        } => {
            let source = match (text, text_flag, text_file) {
                (Some(text), _, _) => write::TextSource::argument(text),
                (None, Some(text), _) => write::TextSource::Literal(text),
                (None, None, Some(path)) => write::TextSource::File(path),
                (None, None, None) => unreachable!("clap requires one text source"),
            };
            let text = source.read(std::io::stdin().lock())?;
            let index = &config.group_index_name;
            let sent = write::send_from(
                &client,
                &table,
                index,
                &group,
                &from,
                name,
                handle,
                &text,
                at.as_deref(),
            )
            .await?;
            print_written(&sent, json, "sent")?;
        }
        Command::NewConversation {
            from,
            name,
            handle,
            to,
            to_name,
            to_handle,
            text,
        } => {
            let from = write::Who::parse(&from, name, handle)?.require("--name and --handle")?;
            let to =
                write::Who::parse(&to, to_name, to_handle)?.require("--to-name and --to-handle")?;
            let created = write::new_conversation(&client, &table, from, to, &text).await?;
            print_written(&created, json, "new conversation")?;
        }
        Command::ListTables => {
            for name in admin::list_tables(&client).await? {
                if json {
                    emit(serde_json::json!({ "table": name }))?;
                } else {
                    emit(name)?;
                }
            }
        }
        Command::Drop { yes } => {
            if !yes {
                bail!(
                    "refusing to drop table {table} at {endpoint}: add --yes (-y) to delete it and all its items"
                );
            }
            admin::drop_table(&client, &table).await?;
            if json {
                emit(serde_json::json!({ "dropped": table }))?;
            } else {
                emit(format!("dropped table {table}"))?;
            }
        }
        Command::Scan { index, limit } => {
            let items =
                admin::scan(&client, &table, index.as_deref(), limit.map(|l| l as usize)).await?;
            print_items(
                &items,
                style,
                &[PK_ATTR, SK_ATTR, GROUP_ATTR, USER_HANDLE_ATTR, MESSAGE_ATTR],
            )?;
        }
        Command::Watch(args) => {
            let streams = aws_sdk_dynamodbstreams::Client::new(&resolved.sdk);
            let app = app().with_metrics(metrics_to_stderr(args.metrics)?);
            watch(config.clone(), app, streams, &args, json, &writing).await?
        }
        Command::Redrive(args) => {
            let streams = aws_sdk_dynamodbstreams::Client::new(&resolved.sdk);
            redrive(app(), &streams, &args, table_given, json).await?
        }
    }
    Ok(())
}

/// The script `ddb local` runs, relative to a checkout.
const LOCAL_SCRIPT: &str = "scripts/dynamodb-local.sh";

/// `ddb local`: the Makefile's script, with the same PID file and data folder under `.cache/`, of
/// the checkout the command runs in (the current folder or the nearest one above with the script),
/// never of the one `ddb` was built in: a moved or second checkout starts and stops its own server.
fn local(action: LocalAction) -> Result<()> {
    let here = std::env::current_dir().context("the current folder")?;
    let Some(root) = here
        .ancestors()
        .find(|dir| dir.join(LOCAL_SCRIPT).is_file())
    else {
        bail!(
            "no {LOCAL_SCRIPT} in {} or a folder above it: run ddb local inside a messaging-stream checkout",
            here.display()
        );
    };
    let script = root.join(LOCAL_SCRIPT);
    // DDB_SHARED_DIR: where the PID file and the data go (default: this checkout's .cache/).
    let cache = std::env::var_os("DDB_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".cache"));
    let pidfile = cache
        .join("dynamodb-local-shared.pid")
        .display()
        .to_string();
    let args: Vec<String> = match action {
        LocalAction::Start { in_memory, port } => {
            let data = if in_memory {
                "-".to_owned()
            } else {
                cache.join("dynamodb-local-data").display().to_string()
            };
            vec!["shared".into(), port.to_string(), pidfile, data]
        }
        LocalAction::Stop => vec!["stop".into(), pidfile],
        LocalAction::Status { port } => vec!["status".into(), pidfile, port.to_string()],
    };
    let status = std::process::Command::new("bash")
        .arg(&script)
        .args(&args)
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    match status.code() {
        Some(0) => Ok(()),
        code => Err(Exit {
            code: code.and_then(|c| u8::try_from(c).ok()).unwrap_or(1),
            message: String::new(),
        }
        .into()),
    }
}

/// `ddb event`: one Lambda event on stdout; needs no DynamoDB.
fn event(args: &EventArgs, config: &Config) -> Result<()> {
    let from = args.from.as_deref().unwrap_or(seed::ANDREW.handle);
    let who = write::Who::parse(from, None, None)?;
    let short = who.uuid.chars().take(8).collect::<String>();
    let from = who.complete().unwrap_or_else(|| write::Participant {
        uuid: who.uuid.clone(),
        display_name: format!("User {short}"),
        handle: format!("user-{short}"),
    });
    let event = sample::event(&sample::Sample {
        change: match args.change {
            ChangeKind::Insert => sample::Change::Insert,
            ChangeKind::Modify => sample::Change::Modify,
            ChangeKind::Remove => sample::Change::Remove,
        },
        group: args.group.clone(),
        at: args.at.clone(),
        text: args.text.clone(),
        from,
        count: args.count as usize,
        table: config.table_name.clone(),
        region: "us-east-1".to_owned(),
    })?;
    emit(serde_json::to_string_pretty(&event)?)
}

/// `ddb watch`: builds the trigger, prints progress on stderr, stops on Ctrl-C (or SIGTERM).
async fn watch(
    config: Config,
    app: App,
    streams: aws_sdk_dynamodbstreams::Client,
    args: &WatchArgs,
    json: bool,
    writing: &str,
) -> Result<()> {
    let settings = args.settings()?;
    let options = args.options(&settings);
    eprintln!("ddb watch: settings from {settings}");
    eprintln!("{writing}");
    let mut trigger = Trigger::new(streams, app, &config.table_name, options).await?;
    let filter = if settings.filters.value.is_empty() {
        "none".to_owned()
    } else {
        let origin = match (&settings.mapping, &settings.template) {
            (Some(mapping), Some(template)) => format!("{mapping} of {}", template.display()),
            _ => "flags".to_owned(),
        };
        let filter = EventFilter::from_patterns(settings.filters.value.clone())
            .with_context(|| format!("the FilterCriteria of {origin}"))?;
        trigger = trigger.with_filter(filter);
        origin
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
        emit(serde_json::to_string(&stats)?)?;
    } else {
        emit(format!(
            "{}: {stats}",
            if args.once { "drained" } else { "stopped" }
        ))?;
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

/// The read-through reader when a cache table is set and not bypassed. Only then is
/// `CACHE_TTL_SECONDS` read (and a bad value refused): it is the fill's setting.
fn cached_reader(
    config: &Config,
    client: &aws_sdk_dynamodb::Client,
    no_cache: bool,
) -> Result<Option<Reader>> {
    let Some(table) = config.cache_table_name.as_ref().filter(|_| !no_cache) else {
        return Ok(None);
    };
    let ttl = ttl_from_env()?;
    let cache = DynamoCache::new(client.clone(), table.clone());
    Ok(Some(
        Reader::new(client.clone(), config.table_name.clone()).with_cache(Arc::new(cache), ttl),
    ))
}

/// Prints the app's list entries (docs/CACHE.md) as JSON lines or columns.
fn print_entries(entries: &[Entry], style: Option<Style>) -> Result<()> {
    let items: Vec<Item> = entries
        .iter()
        .map(serde_dynamo::to_item)
        .collect::<Result<_, _>>()?;
    print_items(&items, style, &["created_at", "handle", "uuid", "message"])
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
async fn redrive(
    app: App,
    streams: &aws_sdk_dynamodbstreams::Client,
    args: &RedriveArgs,
    table_given: bool,
    json: bool,
) -> Result<()> {
    let batch_size = match args.batch_size {
        Some(size) => size as usize,
        None => {
            let template = template::Template::find(args.template.as_deref())
                .map_err(redrive::BatchSizeError::from)?;
            redrive::template_batch_size(&template)?
        }
    };
    let sources = failure_records::read_sources(&args.sources).await?;
    for skipped in &sources.skipped {
        eprintln!("ddb: skipped {skipped}");
    }
    let options = redrive::RedriveOptions {
        batch_size,
        dry_run: args.dry_run,
        table_given,
    };
    let reports = redrive::redrive(&app, streams, sources.records, &options).await;
    for report in &reports {
        for warning in &report.warnings {
            eprintln!("ddb: warning: {warning}");
        }
        if json {
            emit(serde_json::to_string(report)?)?;
        } else {
            emit(report)?;
        }
    }
    let sum = |count: fn(&redrive::RecordReport) -> usize| reports.iter().map(count).sum::<usize>();
    let failed = reports.iter().filter(|r| r.failed()).count();
    if failed > 0 {
        bail!(
            "still failing in {failed} of {} failure records: {} records, {} groups, {} ranges not read (reasons above)",
            reports.len(),
            sum(|r| r.records_failing),
            sum(|r| r.groups_failing),
            sum(|r| usize::from(r.range_failing)),
        );
    }
    if !json {
        emit(format!(
            "{} {} failure records: rows {}moved {}, edited {}, fell back {}, already current {}",
            if args.dry_run {
                "dry run of"
            } else {
                "redrove"
            },
            reports.len(),
            if args.dry_run { "that would be " } else { "" },
            sum(|r| r.rows_moved),
            sum(|r| r.rows_edited),
            sum(|r| r.rows_fallen_back),
            sum(|r| r.rows_already_current),
        ))?;
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
        emit(serde_json::to_string(written)?)
    } else {
        emit(format!(
            "{what}: group {} at {} (message {})",
            written.message_group_uuid, written.created_at, written.message_uuid
        ))
    }
}

/// Prints items as JSON lines (`style`, everything) or as aligned columns for a person: one item a
/// line, escaped and cut to the output's width (`render::table`).
fn print_items(items: &[Item], style: Option<Style>, columns: &[&str]) -> Result<()> {
    if let Some(style) = style {
        for item in items {
            emit(render::item_json(item, style))?;
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|c| render::cell_text(item.get(*c)))
                .collect()
        })
        .collect();
    for line in render::table(columns, &rows, render::output_width()) {
        emit(line)?;
    }
    Ok(())
}
