//! Everything `ddb` prints, in one place: result lines on stdout (a table for a person, JSON lines
//! with `--json`, DynamoDB JSON with `--raw`: [`Output`]; items rendered by [`render`]), notes on
//! stderr ([`note`]), and errors: a failed request said as a person reads it ([`LocalError`]), the
//! fix of a set-up problem ([`hint`]), and a command's failure said once with its exit status
//! ([`fail`]). Commands decide what to say; this module decides how it looks.

pub mod render;

use crate::commands::write::Written;
use crate::commands::CommandError;
use crate::reads::Entry;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use messaging_stream::aws::Setup;
use messaging_stream::plan::Item;
use render::Style;
use std::error::Error as StdError;
use std::fmt::{self, Display};
use std::io::Write as _;
use std::process::ExitCode;

/// How results are printed: `--json` (and `--raw`) or columns for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    /// `None`: text; else JSON lines, items in this style.
    style: Option<Style>,
}

impl Output {
    /// From the global flags (`--raw` only matters with `--json`).
    pub fn new(json: bool, raw: bool) -> Self {
        let style = match (json, raw) {
            (false, _) => None,
            (true, false) => Some(Style::Plain),
            (true, true) => Some(Style::Dynamo),
        };
        Self { style }
    }

    /// Whether results are JSON lines.
    pub fn json(&self) -> bool {
        self.style.is_some()
    }

    /// One result: `json` as one JSON line with `--json`, else `text`.
    pub fn result(
        &self,
        json: impl serde::Serialize,
        text: impl Display,
    ) -> Result<(), CommandError> {
        if self.json() {
            emit(serde_json::to_string(&json)?)
        } else {
            emit(text)
        }
    }

    /// `value` as one JSON line, with or without `--json` (`ddb replay`'s batch responses).
    pub fn json_line(&self, value: impl serde::Serialize) -> Result<(), CommandError> {
        emit(serde_json::to_string(&value)?)
    }

    /// `value` as pretty JSON, with or without `--json` (`ddb event`'s event, for `ddb replay -`).
    pub fn document(&self, value: impl serde::Serialize) -> Result<(), CommandError> {
        emit(serde_json::to_string_pretty(&value)?)
    }

    /// A line for a person, printed only without `--json` (a summary the JSON lines already hold).
    pub fn text(&self, text: impl Display) -> Result<(), CommandError> {
        if self.json() {
            return Ok(());
        }
        emit(text)
    }

    /// Items as JSON lines (every attribute) or as aligned `columns`: one item a line, escaped and
    /// cut to the output's width ([`render::table`]).
    pub fn items(&self, items: &[Item], columns: &[&str]) -> Result<(), CommandError> {
        if let Some(style) = self.style {
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

    /// The app's list entries (docs/CACHE.md), as [`Output::items`] prints items.
    pub fn entries(&self, entries: &[Entry]) -> Result<(), CommandError> {
        let items: Vec<Item> = entries
            .iter()
            .map(serde_dynamo::to_item)
            .collect::<Result<_, _>>()?;
        self.items(&items, &["created_at", "handle", "uuid", "message"])
    }

    /// What `ddb send` or `ddb new-conversation` (`what`) wrote.
    pub fn written(&self, written: &Written, what: &str) -> Result<(), CommandError> {
        self.result(
            written,
            format_args!(
                "{what}: group {} at {} (message {})",
                written.message_group_uuid, written.created_at, written.message_uuid
            ),
        )
    }
}

/// Prints one line on stdout; a closed stdout (`ddb scan | head -1`) ends ddb quietly.
pub fn emit(line: impl Display) -> Result<(), CommandError> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        result => Ok(result?),
    }
}

/// A note for a person on stderr: `ddb: {text}`.
pub fn note(text: impl Display) {
    eprintln!("ddb: {text}");
}

/// Progress of `ddb watch` on stderr: `ddb watch: {text}`.
pub fn watch_note(text: impl Display) {
    eprintln!("ddb watch: {text}");
}

/// Says `error` on stderr (once, with `-v` the SDK's whole error too) and gives its exit status.
pub fn fail(error: &CommandError, verbose: bool) -> ExitCode {
    if let CommandError::Exit { code, message } = error {
        if !message.is_empty() {
            note(message);
        }
        return ExitCode::from(*code);
    }
    note(said_once(error));
    if verbose {
        if let Some(local) = error.local() {
            note(format_args!("the SDK's whole error: {}", local.detail));
        }
    }
    ExitCode::FAILURE
}

/// The error and its causes, each cause said once: a cause whose text the error before it
/// already includes (`cannot read F: No such file`, then `No such file`) is not repeated.
pub fn said_once(error: &(dyn StdError + 'static)) -> String {
    let mut text = String::new();
    let mut cause = Some(error);
    while let Some(error) = cause {
        let said = error.to_string();
        if !text.contains(&said) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&said);
        }
        cause = error.source();
    }
    text
}

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

    #[test]
    fn each_cause_is_said_once_after_its_context() {
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let error = CommandError::from(missing).context("running scripts/x.sh");
        assert_eq!(said_once(&error), "running scripts/x.sh: No such file");
        // A cause the error before it already includes is not repeated.
        let inner = std::io::Error::other("gone");
        let error = CommandError::from(inner).context("cannot read F: gone");
        assert_eq!(said_once(&error), "cannot read F: gone");
    }

    #[test]
    fn the_request_inside_a_context_is_found_for_verbose() {
        let error =
            CommandError::from(LocalError::other("Scan", "boom".into())).context("scanning");
        assert_eq!(error.local().map(|l| l.operation), Some("Scan"));
        assert!(CommandError::Said("no".into()).local().is_none());
    }

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
