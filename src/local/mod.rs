//! What only the developer CLI (`ddb`) needs: the table's schema, seed data, replaying event files.
//! The Lambda never uses this module.

pub mod proxy;
pub mod queries;
pub mod replay;
pub mod schema;
pub mod seed;

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
