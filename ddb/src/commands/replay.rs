//! `ddb replay`: replaying Lambda events through the very handler the Lambda runs, in-process: from files, or
//! from standard input (`-`), e.g. `ddb event insert ... | ddb replay -`.

use aws_lambda_events::streams::DynamoDbEventResponse;
use messaging_stream::event;
use messaging_stream::handler::{self, App, HandlerError, Summary};
use std::io::Read as _;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not JSON: {source}")]
    NotJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: the handler returned an invocation error: {source}")]
    Handler { path: PathBuf, source: HandlerError },
}

impl ReplayError {
    /// True when the input could not be read or was not JSON (nothing reached the handler).
    pub fn is_unreadable(&self) -> bool {
        matches!(self, Self::Read { .. } | Self::NotJson { .. })
    }
}

/// Reads one event file (`-`: standard input) and runs the handler on it.
pub async fn replay_file(app: &App, path: &Path) -> Result<DynamoDbEventResponse, ReplayError> {
    replay_file_with_summary(app, path)
        .await
        .map(|(response, _)| response)
}

/// [`replay_file`], with the handler's counts (which tell a failed record from a set-up problem).
pub async fn replay_file_with_summary(
    app: &App,
    path: &Path,
) -> Result<(DynamoDbEventResponse, Summary), ReplayError> {
    let stdin = path == Path::new("-");
    let path = if stdin {
        Path::new("standard input")
    } else {
        path
    };
    let read_error = |source| ReplayError::Read {
        path: path.to_owned(),
        source,
    };
    let text = if stdin {
        let mut text = String::new();
        tokio::task::block_in_place(|| std::io::stdin().read_to_string(&mut text))
            .map_err(read_error)?;
        text
    } else {
        tokio::fs::read_to_string(path).await.map_err(read_error)?
    };
    replay_text_with_summary(app, path, &text).await
}

/// Runs the handler on one event's JSON text; `path` names it in errors.
pub async fn replay_text(
    app: &App,
    path: &Path,
    text: &str,
) -> Result<DynamoDbEventResponse, ReplayError> {
    replay_text_with_summary(app, path, text)
        .await
        .map(|(response, _)| response)
}

/// [`replay_text`] with the handler's counts. No deadline, as an invocation with
/// `Context::default()` has none.
async fn replay_text_with_summary(
    app: &App,
    path: &Path,
    text: &str,
) -> Result<(DynamoDbEventResponse, Summary), ReplayError> {
    let payload = serde_json::from_str(text).map_err(|source| ReplayError::NotJson {
        path: path.to_owned(),
        source,
    })?;
    let handled = async {
        let records = event::parse_event(&payload)?;
        Ok(app
            .metrics
            .measure(handler::handle(app, records, None))
            .await?)
    };
    handled.await.map_err(|source| ReplayError::Handler {
        path: path.to_owned(),
        source,
    })
}

/// `ddb replay FILE...`: one JSON line per batch response. Exit 3 when a response names a failed
/// record, 4 when an input cannot be read or is not JSON, 1 (with its fix) when the set-up failed
/// the groups rather than a record.
pub async fn run(
    args: crate::cli::ReplayArgs,
    target: &crate::connect::Target,
    out: &crate::output::Output,
) -> Result<(), super::CommandError> {
    use super::CommandError;
    use crate::cli::{EXIT_ERROR, EXIT_FAILED_RECORD, EXIT_UNREADABLE};
    let session = target.connect().await?;
    session.say_writing();
    let app = session.app_with_metrics(args.metrics)?;
    let mut failed_record = false;
    for file in args.files {
        let (response, summary) = match replay_file_with_summary(&app, &file).await {
            Ok(replayed) => replayed,
            Err(error) if error.is_unreadable() => {
                return Err(CommandError::status(EXIT_UNREADABLE, error.to_string()))
            }
            Err(error) => return Err(error.into()),
        };
        failed_record |= !response.batch_item_failures.is_empty();
        out.json_line(&response)?;
        // A failure of the set-up says nothing about the records: 1 with its fix, not 3.
        if let Some(&setup) = summary.setup_errors.first() {
            let about = match setup {
                messaging_stream::aws::Setup::MissingCacheTable => {
                    session.config.cache_table_name.as_deref()
                }
                _ => Some(session.table()),
            };
            let input = if file.as_os_str() == "-" {
                "standard input".to_owned()
            } else {
                file.display().to_string()
            };
            return Err(CommandError::status(
                EXIT_ERROR,
                format!(
                    "{input}: {setup} ({} of {} groups failed on it; no record is at fault)\n  {}",
                    summary.setup_errors.len(),
                    summary.counts.groups,
                    crate::output::hint(setup, about)
                ),
            ));
        }
    }
    if failed_record {
        return Err(CommandError::status(
            EXIT_FAILED_RECORD,
            "a response named a failed record (batchItemFailures): Lambda would retry from it",
        ));
    }
    Ok(())
}
