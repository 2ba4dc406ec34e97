//! The command line: clap's types (the [`Cli`], its [`Command`]s and each one's arguments), the
//! exit-status table `ddb --help` prints, and the exit codes. Parsing only: what a command does is
//! its module's under [`crate::commands`].

use crate::commands::sample::Change;
use crate::event_source_mapping::mapping::Start;
use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// An error, said on stderr (a set-up problem with its fix on the next line).
pub const EXIT_ERROR: u8 = 1;
/// `ddb replay`: the response named a failed record (Lambda would retry from it).
pub const EXIT_FAILED_RECORD: u8 = 3;
/// `ddb replay`: an input could not be read or was not JSON.
pub const EXIT_UNREADABLE: u8 = 4;

/// The one table of exit codes (`ddb --help`; README's is the same).
pub const EXIT_STATUS: &str = "\
Exit status:
  0  done
  1  an error, said on stderr; a set-up problem (nothing answers at the endpoint, credentials
     refused or missing, the table or its index missing) comes with its fix on the next line,
     for every command, replay included
  2  the arguments are not valid
  3  replay: DynamoDB answered and a response named a failed record (batchItemFailures, which
     Lambda would retry from); local status: DynamoDB Local is not running
  4  replay: an input could not be read or was not JSON";

#[derive(Parser)]
#[command(
    name = "ddb",
    version,
    about = "Run the Cruddur messaging table and its stream consumer locally",
    after_help = EXIT_STATUS
)]
pub struct Cli {
    /// DynamoDB endpoint, as the AWS CLI's, or `aws` for AWS's own endpoints whatever the
    /// environment and the profile say [env: AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL; the
    /// profile's endpoint_url; default: http://127.0.0.1:8000]
    #[arg(long = "endpoint-url", visible_alias = "endpoint", global = true)]
    pub endpoint: Option<String>,
    /// AWS region [env: AWS_REGION; the profile's; default with an endpoint: us-east-1]
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Named profile of ~/.aws/config and ~/.aws/credentials [env: AWS_PROFILE]
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Table name [env: TABLE_NAME; default: cruddur-messages]
    #[arg(long, global = true)]
    pub table: Option<String>,
    /// Print JSON lines instead of a table (items: numbers exact, binary as base64, sets as arrays)
    #[arg(long, global = true)]
    pub json: bool,
    /// With --json, items as DynamoDB JSON, as the AWS CLI prints them ({"S": ...})
    #[arg(long, global = true)]
    pub raw: bool,
    /// Say more on stderr: the SDK's whole error context, debug logs
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// The read-path cache table [env: CACHE_TABLE_NAME; default: none, reads go to the table]
    #[arg(long, global = true)]
    pub cache_table: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create the table (pk/sk, the group GSI, a NEW_IMAGE stream), or check an existing one.
    ///
    /// An existing table is compared with what the function needs (keys, the GSI, the stream):
    /// every difference is listed, and the exit status is non-zero unless there is none.
    SchemaLoad(SchemaLoadArgs),
    /// Write users, conversations and messages (idempotent).
    Seed,
    /// Pattern B: a user's conversation list, newest first, as the app returns it.
    ///
    /// Each entry has the app's five fields (uuid: the group, display_name and handle: the other
    /// participant, message, created_at), whether read through the cache or from the table.
    Conversations(ConversationsArgs),
    /// Pattern A: a group's messages, newest first, as the app returns them.
    ///
    /// Each entry has the app's five fields (uuid: the message, display_name and handle: the
    /// sender, message, created_at), whether read through the cache or from the table.
    Messages(MessagesArgs),
    /// Run the Lambda handler in-process on event files; prints each batch response as a JSON line.
    ///
    /// Exit status: 0 every batch went through; 3 DynamoDB answered and a response named a
    /// failed record (batchItemFailures); 4 an input could not be read or was not JSON; 1 any
    /// other error: an invocation error, or a set-up problem (DynamoDB unreachable, credentials
    /// refused, the table or its index missing), with its fix.
    Replay(ReplayArgs),
    /// Print a sample Lambda DynamoDB Streams event (as `sam local generate-event`), for `replay -`.
    Event(EventArgs),
    /// Pattern C: write a message to a group, as the app does (the function then moves the group rows).
    ///
    /// The text comes from exactly one of: the TEXT argument (`-` reads standard input), --text, or
    /// --text-file. From standard input or a file it must be UTF-8, and one final line break is dropped.
    Send(SendArgs),
    /// Start a direct conversation: both group rows and the first message, in one transaction.
    NewConversation(NewConversationArgs),
    /// The tables at the endpoint.
    ListTables,
    /// Delete the table and everything in it (only with --yes).
    Drop(DropArgs),
    /// Every item of the table, or of one of its indexes.
    Scan(ScanArgs),
    /// The table's stream triggering the function in-process, as the Lambda event source mapping does.
    Watch(WatchArgs),
    /// Run failed batches through the handler again: S3 destination objects (records included),
    /// SQS/SNS destination messages or `ddb watch` failures (their records, or ranges read back
    /// from the stream).
    Redrive(RedriveArgs),
    /// The shared DynamoDB Local (as `make dynamodb-local`): 127.0.0.1:8000, -sharedDb, by PID.
    Local(LocalArgs),
}

/// `ddb schema-load`'s arguments (its help is the variant's).
#[derive(Args)]
pub struct SchemaLoadArgs {
    /// Repair a missing GSI or stream with UpdateTable (a KEYS_ONLY stream is replaced).
    #[arg(long)]
    pub fix: bool,
    /// Also create the cache table (key id, TTL on expires_at): --cache-table, CACHE_TABLE_NAME,
    /// or cruddur-cache-local.
    #[arg(long)]
    pub cache: bool,
}

/// `ddb conversations`'s arguments (its help is the variant's).
#[derive(Args)]
pub struct ConversationsArgs {
    /// The user's id (or a seed user's handle).
    pub user_uuid: String,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    /// Read the table even when a cache table is set.
    #[arg(long)]
    pub no_cache: bool,
    /// Print the GRP# rows themselves (every attribute), read from the table, not the app's entries.
    #[arg(long)]
    pub items: bool,
}

/// `ddb messages`'s arguments (its help is the variant's).
#[derive(Args)]
pub struct MessagesArgs {
    pub group_uuid: String,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    /// Read the table even when a cache table is set.
    #[arg(long)]
    pub no_cache: bool,
    /// Print the MSG# items themselves (every attribute), read from the table, not the app's entries.
    #[arg(long)]
    pub items: bool,
}

/// `ddb replay`'s arguments (its help is the variant's).
#[derive(Args)]
pub struct ReplayArgs {
    /// Lambda event JSON files, one event per file; `-` reads standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print each invocation's EMF metrics document to stderr.
    #[arg(long)]
    pub metrics: bool,
}

/// `ddb send`'s arguments (its help is the variant's).
#[derive(Args)]
pub struct SendArgs {
    /// The conversation's message_group_uuid.
    #[arg(long)]
    pub group: String,
    /// The sender: any id the group's rows name (a row's owner or its other participant:
    /// uuid, ULID, Cognito sub...), or a seed user's handle. Anyone else is refused.
    #[arg(long)]
    pub from: String,
    /// The sender's display name [default: as the group's rows describe the sender]
    #[arg(long)]
    pub name: Option<String>,
    /// The sender's handle [default: as the group's rows describe the sender]
    #[arg(long)]
    pub handle: Option<String>,
    /// The message's instant (its sort key, written as given; any ISO form the function
    /// accepts) [default: now, in UTC]
    #[arg(long)]
    pub at: Option<String>,
    /// The message text; `-` reads it from standard input (`@name` is sent as written).
    #[arg(required_unless_present_any = ["text_flag", "text_file"], conflicts_with_all = ["text_flag", "text_file"])]
    pub text: Option<String>,
    /// The message text, exactly as given (`--text -` sends a dash).
    #[arg(
        long = "text",
        id = "text_flag",
        value_name = "TEXT",
        conflicts_with = "text_file"
    )]
    pub text_flag: Option<String>,
    /// Read the message text from FILE.
    #[arg(long, value_name = "FILE")]
    pub text_file: Option<PathBuf>,
}

/// `ddb new-conversation`'s arguments (its help is the variant's).
#[derive(Args)]
pub struct NewConversationArgs {
    /// The sender: any user's uuid, or a seed user's handle.
    #[arg(long)]
    pub from: String,
    /// The sender's display name (needed unless a seed user)
    #[arg(long)]
    pub name: Option<String>,
    /// The sender's handle (needed unless a seed user)
    #[arg(long)]
    pub handle: Option<String>,
    /// The other participant: any user's uuid, or a seed user's handle.
    #[arg(long)]
    pub to: String,
    /// The other participant's display name (needed unless a seed user)
    #[arg(long)]
    pub to_name: Option<String>,
    /// The other participant's handle (needed unless a seed user)
    #[arg(long)]
    pub to_handle: Option<String>,
    /// The first message's text.
    pub text: String,
}

/// `ddb drop`'s arguments (its help is the variant's).
#[derive(Args)]
pub struct DropArgs {
    /// Yes, delete it.
    #[arg(short, long)]
    pub yes: bool,
}

/// `ddb scan`'s arguments (its help is the variant's).
#[derive(Args)]
pub struct ScanArgs {
    /// Scan this index instead of the table (e.g. message-group-sk-index).
    #[arg(long)]
    pub index: Option<String>,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
}

/// `ddb local`'s arguments (its help is the variant's).
#[derive(Args)]
pub struct LocalArgs {
    #[command(subcommand)]
    pub action: LocalAction,
}

#[derive(Args)]
pub struct RedriveArgs {
    /// Files, folders (every file in them; files that are not failure records are skipped, and
    /// named on stderr), or - for stdin: JSON, JSON lines or arrays of failure records.
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// Most records per invocation [default: the template's BatchSize].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: Option<u32>,
    /// The SAM template whose BatchSize bounds the batches [default: template.yaml here or in the
    /// nearest folder above]
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// Run the handler on the records without writing anything (its writes kept in memory): the
    /// report counts what the real run would do.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Subcommand, Clone, Copy)]
pub enum LocalAction {
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
pub struct WatchArgs {
    /// The SAM/CloudFormation template [default: template.yaml here or in the nearest folder above]
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// The function (logical id, or Function.Event, or a mapping's id) when the template has several
    #[arg(long)]
    pub function: Option<String>,
    /// Where to start on the shards open now (StartingPosition).
    #[arg(long, value_parser = starting_position())]
    pub from: Option<Start>,
    /// Most records per invocation (BatchSize: 1 to 10000).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: Option<u32>,
    /// Seconds to gather a batch (MaximumBatchingWindowInSeconds: 0 to 300).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=300))]
    pub batching_window: Option<u32>,
    /// Split a batch in two when the function fails as a whole (BisectBatchOnFunctionError on).
    #[arg(long, overrides_with = "no_bisect")]
    pub bisect: bool,
    /// Do not split failing batches (BisectBatchOnFunctionError off).
    #[arg(long)]
    pub no_bisect: bool,
    /// Retries before a failing range goes to the failures file; -1 for ever (MaximumRetryAttempts).
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..=10_000))]
    pub max_retries: Option<i64>,
    /// Records older than this many seconds are given up unprocessed; -1 never
    /// (MaximumRecordAgeInSeconds: -1 or 60 to 604800).
    #[arg(long, allow_negative_numbers = true, value_parser = record_age)]
    pub max_record_age: Option<i64>,
    /// Batches of one shard at once, a key's records always in one (ParallelizationFactor: 1 to 10).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub parallelization_factor: Option<u32>,
    /// Pass every record to the function, ignoring the template's FilterCriteria (with no
    /// template at all, Lambda's defaults are used).
    #[arg(long)]
    pub no_filter: bool,
    /// JSON lines, one per range given up (the on-failure destination; format: src/event_source_mapping/failures.rs).
    #[arg(long, default_value = "ddb-watch-failures.jsonl")]
    pub failures_file: PathBuf,
    /// Keep each shard's position in this file: a restart resumes after what was acknowledged.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Seconds before an invocation counts as failed (the function's Timeout: 1 to 900).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=900))]
    pub timeout: Option<u32>,
    /// Drain what the stream holds now, then exit (non-zero if any range was given up).
    #[arg(long)]
    pub once: bool,
    /// Print each invocation's EMF metrics document to stderr.
    #[arg(long)]
    pub metrics: bool,
}

/// `--from`'s two words, read straight into the template's own [`Start`] (one enum for the idea).
fn starting_position() -> impl clap::builder::TypedValueParser<Value = Start> {
    PossibleValuesParser::new(["trim-horizon", "latest"]).map(|word| match word.as_str() {
        "latest" => Start::Latest,
        _ => Start::TrimHorizon,
    })
}

/// `--max-record-age`: Lambda's range.
fn record_age(text: &str) -> Result<i64, String> {
    match text.parse::<i64>() {
        Ok(age) if age == -1 || (60..=604_800).contains(&age) => Ok(age),
        _ => Err("Lambda takes -1 (for ever) or 60 to 604800 seconds".to_owned()),
    }
}

#[derive(Args)]
pub struct EventArgs {
    /// The change: a new message, an edit, or a deleted message.
    #[arg(value_enum)]
    pub change: Change,
    /// The message's group (message_group_uuid).
    #[arg(long)]
    pub group: String,
    /// The message's sort key (any ISO form the function accepts).
    #[arg(long)]
    pub at: String,
    /// The message text (INSERT and MODIFY).
    #[arg(long, default_value = "hello from ddb event")]
    pub text: String,
    /// The sender: a user's uuid or a seed user's handle [default: andrewbrown]
    #[arg(long)]
    pub from: Option<String>,
    /// Records in the event: the first at --at, each next one a second later.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub count: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_arguments_are_consistent_and_help_ends_with_the_exit_statuses() {
        Cli::command().debug_assert();
        let help = Cli::command().render_long_help().to_string();
        assert!(
            help.trim_end()
                .ends_with(EXIT_STATUS.lines().last().unwrap().trim()),
            "{help}"
        );
    }

    #[test]
    fn watch_from_reads_straight_into_the_templates_start() {
        let from = |word: &str| match Cli::try_parse_from(["ddb", "watch", "--from", word]) {
            Ok(Cli {
                command: Command::Watch(args),
                ..
            }) => Ok(args.from),
            Ok(_) => panic!("not watch"),
            Err(error) => Err(error.kind()),
        };
        assert_eq!(from("latest"), Ok(Some(Start::Latest)));
        assert_eq!(from("trim-horizon"), Ok(Some(Start::TrimHorizon)));
        assert_eq!(
            from("at-timestamp"),
            Err(clap::error::ErrorKind::InvalidValue)
        );
    }
}
