//! The developer commands of `ddb`: what a developer does to a table on DynamoDB Local (or any
//! endpoint): its schema (create, check, fix), seed data, the app's read and write patterns,
//! table chores, replaying events, sample events, and printing items. It owns [`LocalError`], a
//! failed request said as a person reads it. It does not own the stream trigger
//! (`crate::event_source_mapping`) nor the fault proxy (`crate::fault_proxy`). The Lambda never
//! uses this module.

pub mod admin;
pub mod queries;
pub mod redrive;
pub mod render;
pub mod replay;
pub mod sample;
pub mod schema;
pub mod seed;
pub mod write;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use std::error::Error as StdError;
use std::fmt;

/// A request of the developer tooling that failed, said as a person reads it: the operation, the
/// table, DynamoDB's error code and message, and the fix when there is one. The SDK's whole
/// explanation is kept in `detail` (`ddb -v` prints it); it never reaches the normal output.
#[derive(Debug, thiserror::Error)]
pub struct LocalError {
    pub operation: &'static str,
    /// The table the request was about (`None` for ListTables).
    pub table: Option<String>,
    /// DynamoDB's error code (`ResourceNotFoundException`), or what went wrong on the way there
    /// (`connection refused`, `timeout`, `no response`).
    pub code: String,
    pub message: String,
    /// The SDK's full error context.
    pub detail: String,
}

impl fmt::Display for LocalError {
    /// `Query on table t failed (ResourceNotFoundException): Cannot do operations on a non-existent table`,
    /// then the fix, if any, on its own line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.operation)?;
        if let Some(table) = &self.table {
            write!(f, " on table {table}")?;
        }
        write!(f, " failed ({}): {}", self.code, self.message)?;
        if let Some(fix) = self.fix() {
            write!(f, "\n  {fix}")?;
        }
        Ok(())
    }
}

impl LocalError {
    /// From an SDK error of `operation` (any AWS SDK operation error).
    pub fn sdk<E>(operation: &'static str, error: E) -> Self
    where
        E: StdError + ProvideErrorMetadata + 'static,
    {
        let (code, message) = crate::aws::describe_error(&error);
        Self {
            operation,
            table: None,
            code,
            message,
            detail: DisplayErrorContext(&error).to_string(),
        }
    }

    /// An error that did not come from the SDK directly (e.g. the store's), in its own words.
    pub fn other(operation: &'static str, message: String) -> Self {
        Self {
            operation,
            table: None,
            code: "error".to_owned(),
            detail: message.clone(),
            message,
        }
    }

    /// The same error, naming the table it was about.
    pub fn on(mut self, table: &str) -> Self {
        self.table = Some(table.to_owned());
        self
    }

    /// What to do about it, where that is known.
    pub fn fix(&self) -> Option<String> {
        match self.code.as_str() {
            "ResourceNotFoundException" => Some(match &self.table {
                Some(table) => format!("create it with ddb schema-load --table {table}"),
                None => "create it with ddb schema-load --table NAME".to_owned(),
            }),
            "connection refused" => Some("is DynamoDB Local running? make dynamodb-local".into()),
            "UnrecognizedClientException" | "InvalidSignatureException" => {
                Some("check the credentials (--profile, AWS_ACCESS_KEY_ID)".into())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::ErrorMetadata;

    #[derive(Debug)]
    struct Service(ErrorMetadata);
    impl fmt::Display for Service {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "service error")
        }
    }
    impl StdError for Service {}
    impl ProvideErrorMetadata for Service {
        fn meta(&self) -> &ErrorMetadata {
            &self.0
        }
    }

    #[test]
    fn a_missing_table_says_how_to_create_it() {
        let error = Service(
            ErrorMetadata::builder()
                .code("ResourceNotFoundException")
                .message("Cannot do operations on a non-existent table")
                .build(),
        );
        let error = LocalError::sdk("Query", error).on("mine");
        assert_eq!(
            error.to_string(),
            "Query on table mine failed (ResourceNotFoundException): Cannot do operations on a \
             non-existent table\n  create it with ddb schema-load --table mine"
        );
    }
}
