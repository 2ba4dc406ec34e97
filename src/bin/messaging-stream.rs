//! The Lambda: reads the config and builds the DynamoDB client once, then serves invocations.
//! Each invocation parses its records, runs the handler, and writes one EMF metrics document to
//! stdout around it (`METRICS=off` turns it off).
//!
//! A setting that cannot be used stops it at start-up with one sentence on stderr (the variable,
//! its value and what is allowed) and exit status 1, before any invocation.

use aws_lambda_events::streams::DynamoDbEventResponse;
use lambda_runtime::{service_fn, LambdaEvent};
use messaging_stream::event::{self, RawEvent};
use messaging_stream::handler::{self, HandlerError};
use messaging_stream::logging::LogSettings;
use messaging_stream::metrics::{Metrics, MetricsConfig, Output};
use messaging_stream::{App, Config};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    // JSON or text per AWS_LAMBDA_LOG_FORMAT, level per AWS_LAMBDA_LOG_LEVEL (or RUST_LOG); every
    // crate but ours capped at DEBUG, whatever RUST_LOG says (src/logging.rs).
    let settings = match LogSettings::from_env() {
        Ok(settings) => settings,
        Err(error) => return refuse(&error),
    };
    messaging_stream::logging::init_with(settings);
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => return refuse(&error),
    };
    let metrics = match MetricsConfig::from_env() {
        Ok(metrics) => Metrics::new(metrics, Output::Stdout),
        Err(error) => return refuse(&error),
    };
    // lambda_runtime panics on a missing runtime variable; outside Lambda that is a mistake to name.
    if let Err(missing) = runtime_environment() {
        eprintln!(
            "messaging-stream: {missing} is not set: this binary runs inside Lambda (locally: \
             cargo lambda watch, or ddb replay / ddb watch, which call the same handler)"
        );
        return ExitCode::FAILURE;
    }
    let app = App::from_config(config).await.with_metrics(metrics);
    let served = lambda_runtime::run(service_fn(|event: LambdaEvent<RawEvent>| {
        invoke(&app, event)
    }))
    .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("messaging-stream: {error}");
            ExitCode::FAILURE
        }
    }
}

/// One invocation: the records parsed one by one from the raw event (each stays JSON text until
/// its turn, which keeps a large batch's memory near its JSON size), the handler run within the
/// invocation's deadline, its metrics document written around it.
async fn invoke(
    app: &App,
    event: LambdaEvent<RawEvent>,
) -> Result<DynamoDbEventResponse, HandlerError> {
    let deadline = handler::lambda_deadline(&event.context, app.config.deadline_margin);
    let records = event::parse_raw_event(&event.payload)?;
    drop(event);
    let (response, _) = app
        .metrics
        .measure(handler::handle(app, records, deadline))
        .await?;
    Ok(response)
}

/// The variables `lambda_runtime` reads with `expect`: the first one missing (or, for the memory
/// size, not a number).
fn runtime_environment() -> Result<(), &'static str> {
    for name in [
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    ] {
        if std::env::var_os(name).is_none() {
            return Err(name);
        }
    }
    match std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").map(|size| size.parse::<i32>()) {
        Ok(Ok(_)) => Ok(()),
        _ => Err("a whole number in AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
    }
}

fn refuse(error: &dyn std::error::Error) -> ExitCode {
    eprintln!("messaging-stream: {error}");
    ExitCode::FAILURE
}
