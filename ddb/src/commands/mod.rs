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

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use messaging_stream::aws::Setup;
use std::error::Error as StdError;
use std::fmt;

/// What to do about a set-up problem: the one place `ddb` maps errors to hints. `table` is the
/// table the failed request was about, when known.
pub fn hint(setup: Setup, table: Option<&str>) -> String {
    let table = table.unwrap_or("NAME");
    match setup {
        Setup::Unreachable => {
            "is DynamoDB Local running? make dynamodb-local (or check --endpoint-url)".to_owned()
        }
        Setup::NotConfigured => {
            "no credentials or no region: check --profile, --region, AWS_ACCESS_KEY_ID".to_owned()
        }
        Setup::Credentials => {
            "check the credentials and their permissions (--profile, AWS_ACCESS_KEY_ID)".to_owned()
        }
        Setup::MissingTable => format!("create it with ddb schema-load --table {table}"),
        Setup::MissingIndex => {
            format!("the table lacks the group index: add it with ddb schema-load --fix --table {table}")
        }
        Setup::MissingCacheTable => {
            format!("create it with ddb schema-load --cache --cache-table {table}")
        }
    }
}

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
    /// The set-up problem it shows (its fix is [`hint`]), if any.
    pub setup: Option<Setup>,
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
    pub fn sdk<E, R>(operation: &'static str, error: SdkError<E, R>) -> Self
    where
        E: StdError + ProvideErrorMetadata + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        let (code, message) = messaging_stream::aws::describe_error(&error);
        Self {
            operation,
            table: None,
            code,
            message,
            detail: DisplayErrorContext(&error).to_string(),
            setup: Setup::of(&error),
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
            setup: None,
        }
    }

    /// The same error, naming the table it was about.
    pub fn on(mut self, table: &str) -> Self {
        self.table = Some(table.to_owned());
        self
    }

    /// What to do about it, where that is known.
    pub fn fix(&self) -> Option<String> {
        self.setup.map(|setup| hint(setup, self.table.as_deref()))
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

    fn service(code: &str, message: &str) -> SdkError<Service, ()> {
        SdkError::service_error(
            Service(ErrorMetadata::builder().code(code).message(message).build()),
            (),
        )
    }

    #[test]
    fn a_missing_table_says_how_to_create_it() {
        let error = service(
            "ResourceNotFoundException",
            "Cannot do operations on a non-existent table",
        );
        let error = LocalError::sdk("Query", error).on("mine");
        assert_eq!(
            error.to_string(),
            "Query on table mine failed (ResourceNotFoundException): Cannot do operations on a \
             non-existent table\n  create it with ddb schema-load --table mine"
        );
    }

    #[test]
    fn a_missing_index_says_schema_load_fix_and_other_validation_errors_say_nothing() {
        let missing = service(
            "ValidationException",
            "The table does not have the specified index: message-group-sk-index",
        );
        let error = LocalError::sdk("Query", missing).on("mine");
        assert_eq!(error.setup, Some(Setup::MissingIndex));
        assert!(
            error
                .to_string()
                .ends_with("\n  the table lacks the group index: add it with ddb schema-load --fix --table mine"),
            "{error}"
        );
        let other = service("ValidationException", "Item size has exceeded the maximum");
        let error = LocalError::sdk("PutItem", other).on("mine");
        assert_eq!((error.setup, error.fix()), (None, None));
    }

    #[test]
    fn no_answer_and_refused_credentials_are_set_up_problems() {
        use aws_smithy_runtime_api::client::result::ConnectorError;
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let error: SdkError<Service, ()> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(refused)));
        let error = LocalError::sdk("Query", error);
        assert_eq!(error.setup, Some(Setup::Unreachable));
        assert!(
            error.to_string().contains("is DynamoDB Local running?"),
            "{error}"
        );
        let no_credentials: SdkError<Service, ()> =
            SdkError::dispatch_failure(ConnectorError::other("no credentials".into(), None));
        assert_eq!(Setup::of(&no_credentials), Some(Setup::NotConfigured));
        let refused = service(
            "UnrecognizedClientException",
            "The security token is invalid",
        );
        assert_eq!(Setup::of(&refused), Some(Setup::Credentials));
        let throttled = service("ProvisionedThroughputExceededException", "slow down");
        assert_eq!(Setup::of(&throttled), None);
    }
}
