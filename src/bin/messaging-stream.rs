//! The Lambda: reads the config and builds the DynamoDB client once, then serves invocations.
//! Each invocation writes one EMF metrics document to stdout (`METRICS=off` turns it off).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use messaging_stream::event::RawEvent;
use messaging_stream::handler::handle_raw;
use messaging_stream::metrics::{Metrics, MetricsConfig, Output};
use messaging_stream::{App, Config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON or text per AWS_LAMBDA_LOG_FORMAT, level per AWS_LAMBDA_LOG_LEVEL; the SDK capped at DEBUG.
    messaging_stream::logging::init();
    let config = Config::from_env()?;
    let metrics = Metrics::new(MetricsConfig::from_env()?, Output::Stdout);
    let app = App::from_config(config).await.with_metrics(metrics);
    lambda_runtime::run(service_fn(|event: LambdaEvent<RawEvent>| {
        handle_raw(&app, event)
    }))
    .await
}
