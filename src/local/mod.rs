//! What only the developer CLI (`ddb`) needs: the table's schema, seed data, the app's read and
//! write patterns, replaying event files, the local stream trigger (`watch`, with `stream`,
//! `lambda_record`, `batching` and `failures`), and redriving failed batches (`redrive`, with
//! `failure_records` and `hydrate`). The Lambda never uses this module.

pub mod admin;
pub mod batching;
pub mod failure_records;
pub mod failures;
pub mod hydrate;
pub mod lambda_record;
pub mod proxy;
pub mod queries;
pub mod redrive;
pub mod replay;
pub mod schema;
pub mod seed;
pub mod stream;
pub mod watch;
pub mod write;

use aws_sdk_dynamodb::error::DisplayErrorContext;

/// A request of the developer tooling that failed, with the SDK's full explanation.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {detail}")]
pub struct LocalError {
    pub operation: &'static str,
    pub detail: String,
}

impl LocalError {
    pub fn sdk<E: std::error::Error>(operation: &'static str, error: E) -> Self {
        Self {
            operation,
            detail: DisplayErrorContext(error).to_string(),
        }
    }
}
