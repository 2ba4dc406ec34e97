//! Replaying Lambda event files through the very handler the Lambda runs, in-process.

use crate::handler::{self, App, HandlerError};
use aws_lambda_events::streams::DynamoDbEventResponse;
use lambda_runtime::{Context, LambdaEvent};
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

/// Reads one event file and runs the handler on it.
pub async fn replay_file(app: &App, path: &Path) -> Result<DynamoDbEventResponse, ReplayError> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|source| ReplayError::Read {
            path: path.to_owned(),
            source,
        })?;
    let payload = serde_json::from_str(&text).map_err(|source| ReplayError::NotJson {
        path: path.to_owned(),
        source,
    })?;
    handler::handle(app, LambdaEvent::new(payload, Context::default()))
        .await
        .map_err(|source| ReplayError::Handler {
            path: path.to_owned(),
            source,
        })
}
