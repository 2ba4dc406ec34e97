//! The Lambda: reads the config and builds the DynamoDB client once, then serves invocations.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use messaging_stream::event::RawEvent;
use messaging_stream::handler::handle_raw;
use messaging_stream::{App, Config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON or text per AWS_LAMBDA_LOG_FORMAT, level per AWS_LAMBDA_LOG_LEVEL; the SDK capped at DEBUG.
    messaging_stream::logging::init();
    let config = Config::from_env()?;
    let app = App::from_config(config).await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<RawEvent>| {
        handle_raw(&app, event)
    }))
    .await
}
