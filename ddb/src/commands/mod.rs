//! The commands of `ddb`, one module per subcommand, each with one `run`: what a developer does to
//! a table on DynamoDB Local (or any endpoint): its schema (create, check, fix), seed data, the
//! app's read and write patterns, table chores, replaying events, sample events, the stream
//! trigger and redrive. [`run`] dispatches a parsed [`Command`]; [`CommandError`] is what any of
//! them can fail with. Printing is [`crate::output`]'s, connecting [`crate::connect`]'s; the stream
//! trigger itself is [`crate::event_source_mapping`]'s. The Lambda never uses this module.

pub mod admin;
pub mod conversations;
pub mod drop;
pub mod event;
pub mod list_tables;
mod lists;
pub mod local;
pub mod messages;
pub mod new_conversation;
pub mod redrive;
pub mod replay;
pub mod sample;
pub mod scan;
pub mod schema;
pub mod seed;
pub mod send;
pub mod watch;
pub mod write;

use crate::cli::Command;
use crate::connect::Target;
use crate::output::{LocalError, Output};

/// Runs one command: those that talk to DynamoDB connect through `target` themselves.
pub async fn run(command: Command, target: &Target, out: &Output) -> Result<(), CommandError> {
    match command {
        Command::SchemaLoad(args) => schema::run(args, target, out).await,
        Command::Seed => seed::run(target, out).await,
        Command::Conversations(args) => conversations::run(args, target, out).await,
        Command::Messages(args) => messages::run(args, target, out).await,
        Command::Replay(args) => replay::run(args, target, out).await,
        Command::Event(args) => event::run(&args, target, out),
        Command::Send(args) => send::run(args, target, out).await,
        Command::NewConversation(args) => new_conversation::run(args, target, out).await,
        Command::ListTables => list_tables::run(target, out).await,
        Command::Drop(args) => drop::run(args, target, out).await,
        Command::Scan(args) => scan::run(args, target, out).await,
        Command::Watch(args) => watch::run(args, target, out).await,
        Command::Redrive(args) => redrive::run(args, target, out).await,
        Command::Local(args) => local::run(args.action),
    }
}

/// Why a command failed. Each variant's words are its cause's; [`crate::output::fail`] says them
/// once and maps them to an exit status.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Only an exit status, its words (if any) said as they are: `ddb replay`'s 3 and 4, a
    /// set-up problem already explained, `ddb local`'s script's own status.
    #[error("{message}")]
    Exit { code: u8, message: String },
    /// A refusal or a finding of the command itself (`refusing to drop table ...`).
    #[error("{0}")]
    Said(String),
    /// `context`, then what caused it.
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<CommandError>,
    },
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(transparent)]
    Config(#[from] messaging_stream::config::ConfigError),
    #[error(transparent)]
    Endpoint(#[from] messaging_stream::aws::EndpointError),
    #[error(transparent)]
    Metrics(#[from] messaging_stream::metrics::MetricsConfigError),
    #[error(transparent)]
    Write(#[from] write::WriteError),
    #[error(transparent)]
    Replay(#[from] replay::ReplayError),
    #[error(transparent)]
    Sample(#[from] sample::SampleError),
    #[error(transparent)]
    BatchSize(#[from] redrive::BatchSizeError),
    #[error(transparent)]
    FailureRecords(#[from] crate::event_source_mapping::failure_records::InputError),
    #[error(transparent)]
    Mapping(#[from] crate::event_source_mapping::mapping::MappingError),
    #[error(transparent)]
    Watch(#[from] crate::event_source_mapping::watch::WatchError),
    #[error(transparent)]
    Filter(#[from] crate::filter::FilterError),
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Item(#[from] serde_dynamo::Error),
}

impl CommandError {
    /// A failure that sets exit status `code` and says `message` as it is.
    pub fn status(code: u8, message: impl Into<String>) -> Self {
        Self::Exit {
            code,
            message: message.into(),
        }
    }

    /// The same error, said after `context`.
    pub fn context(self, context: impl Into<String>) -> Self {
        Self::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }

    /// The failed request inside, if any (`ddb -v` prints the SDK's whole error).
    pub fn local(&self) -> Option<&LocalError> {
        match self {
            Self::Local(local) => Some(local),
            Self::Context { source, .. } => source.local(),
            _ => None,
        }
    }
}
