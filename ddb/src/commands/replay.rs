//! Replaying Lambda events through the very handler the Lambda runs, in-process: from files, or
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
