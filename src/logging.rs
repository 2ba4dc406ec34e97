//! The Lambda's log subscriber: lambda_runtime's default (format from `AWS_LAMBDA_LOG_FORMAT`,
//! level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`), except that the AWS SDK and the HTTP stack
//! never log below DEBUG. At TRACE they print whole request and response bodies, and those carry
//! users' messages (the group rows' last text, the moves' new text): message text must never
//! reach a log line, whatever level the function is set to.

use lambda_runtime::tracing::subscriber::filter::{EnvFilter, LevelFilter};
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

/// Installs the subscriber for the process, as `lambda_runtime::tracing::init_default_subscriber`
/// does, with [`filter`]. Call once, at start-up.
pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|level| LevelFilter::from_str(&level).ok())
        .unwrap_or(LevelFilter::INFO);
    let collector = lambda_runtime::tracing::subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(filter(level));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    if json {
        collector.json().init()
    } else {
        collector.init()
    }
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
}
