//! The Lambda's log subscriber: lambda_runtime's default (format from `AWS_LAMBDA_LOG_FORMAT`,
//! level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`), except that the AWS SDK and the HTTP stack
//! never log below DEBUG. At TRACE they print whole request and response bodies, and those carry
//! users' messages (the group rows' last text, the moves' new text): message text must never
//! reach a log line, whatever level the function is set to.

use crate::config::ConfigError;
use lambda_runtime::tracing::subscriber::filter::{EnvFilter, LevelFilter};
use std::io::IsTerminal;
use std::str::FromStr;

/// Crates whose TRACE output includes request or response bodies.
const CAPPED: &[&str] = &[
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_smithy_types",
    "aws_runtime",
    "aws_config",
    "aws_sdk_dynamodb",
    "aws_sdk_dynamodbstreams",
    "hyper",
    "hyper_util",
    "h2",
];

/// The filter for `level`: `level` for everything, at most DEBUG for the [`CAPPED`] crates.
pub fn filter(level: LevelFilter) -> EnvFilter {
    let capped = level.min(LevelFilter::DEBUG);
    CAPPED.iter().fold(
        EnvFilter::builder()
            .with_default_directive(level.into())
            .from_env_lossy(),
        |filter, target| {
            filter.add_directive(
                format!("{target}={capped}")
                    .parse()
                    .expect("a valid directive"),
            )
        },
    )
}

/// How the Lambda logs, from `AWS_LAMBDA_LOG_FORMAT` and `AWS_LAMBDA_LOG_LEVEL` (or `RUST_LOG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    pub json: bool,
    pub level: LevelFilter,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            json: false,
            level: LevelFilter::INFO,
        }
    }
}

impl LogSettings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`. A value Lambda would not accept is an error that names
    /// the variable, the value and what is allowed; `RUST_LOG` (a Rust convention, used only when
    /// `AWS_LAMBDA_LOG_LEVEL` is unset) falls back to INFO when it is not a plain level.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let json = match lookup("AWS_LAMBDA_LOG_FORMAT") {
            None => false,
            Some(format) if format.eq_ignore_ascii_case("json") => true,
            Some(format) if format.eq_ignore_ascii_case("text") => false,
            Some(value) => {
                return Err(ConfigError {
                    variable: "AWS_LAMBDA_LOG_FORMAT",
                    value,
                    expected: "`Text` or `JSON`",
                })
            }
        };
        let level = match lookup("AWS_LAMBDA_LOG_LEVEL") {
            Some(value) => match value.to_ascii_uppercase().as_str() {
                "TRACE" => LevelFilter::TRACE,
                "DEBUG" => LevelFilter::DEBUG,
                "INFO" => LevelFilter::INFO,
                "WARN" => LevelFilter::WARN,
                "ERROR" | "FATAL" => LevelFilter::ERROR,
                _ => {
                    return Err(ConfigError {
                        variable: "AWS_LAMBDA_LOG_LEVEL",
                        value,
                        expected: "one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL",
                    })
                }
            },
            None => lookup("RUST_LOG")
                .and_then(|level| LevelFilter::from_str(&level).ok())
                .unwrap_or(LevelFilter::INFO),
        };
        Ok(Self { json, level })
    }
}

/// Installs the subscriber for the process, as `lambda_runtime::tracing::init_default_subscriber`
/// does, with [`filter`]; colours only when stdout (where Lambda's logs go) is a terminal.
/// Call once, at start-up.
pub fn init_with(settings: LogSettings) {
    let collector = lambda_runtime::tracing::subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(filter(settings.level));
    if settings.json {
        collector.json().init()
    } else {
        collector.init()
    }
}

/// [`init_with`] the environment's settings (INFO text if they are not valid).
pub fn init() {
    init_with(LogSettings::from_env().unwrap_or_default())
}

/// The tools' subscriber (`ddb`): text on stderr, colours only when stderr is a terminal, INFO (or
/// `RUST_LOG`), DEBUG with `verbose`; the SDK capped as for the Lambda.
pub fn init_tool(verbose: bool) {
    let level = if verbose {
        LevelFilter::DEBUG
    } else {
        std::env::var("RUST_LOG")
            .ok()
            .and_then(|level| LevelFilter::from_str(&level).ok())
            .unwrap_or(LevelFilter::INFO)
    };
    lambda_runtime::tracing::subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter(level))
        .init()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_is_capped_at_debug_and_never_raised() {
        let trace = filter(LevelFilter::TRACE).to_string();
        assert!(trace.contains("aws_smithy_runtime=debug"), "{trace}");
        let info = filter(LevelFilter::INFO).to_string();
        assert!(info.contains("aws_smithy_runtime=info"), "{info}");
    }

    #[test]
    fn log_settings_take_what_lambda_takes() {
        let read = |vars: &[(&str, &str)]| {
            LogSettings::from_lookup(|name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
        };
        assert_eq!(read(&[]).unwrap(), LogSettings::default());
        let json = read(&[
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_LAMBDA_LOG_LEVEL", "debug"),
        ])
        .unwrap();
        assert_eq!((json.json, json.level), (true, LevelFilter::DEBUG));
        assert_eq!(
            read(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")]).unwrap().level,
            LevelFilter::ERROR
        );
        let format = read(&[("AWS_LAMBDA_LOG_FORMAT", "yaml")]).unwrap_err();
        assert_eq!(
            format.to_string(),
            "AWS_LAMBDA_LOG_FORMAT=\"yaml\" is not valid: `Text` or `JSON`"
        );
        let level = read(&[("AWS_LAMBDA_LOG_LEVEL", "verbose")]).unwrap_err();
        assert_eq!(level.variable, "AWS_LAMBDA_LOG_LEVEL");
    }
}
