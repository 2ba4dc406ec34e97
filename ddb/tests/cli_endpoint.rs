//! `--endpoint aws` is AWS, whatever the environment and the profile say; an explicit endpoint
//! beats them all: checked on the real SDK clients (DynamoDB and DynamoDB Streams) built by
//! `aws::resolve`, each request captured before it is sent and then failed, so no network is used.
//!
//! This binary holds ONE test on purpose: it sets the process environment (AWS_ENDPOINT_URL*,
//! AWS_CONFIG_FILE, credentials), which no other test may share. Add other tests elsewhere.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use messaging_stream::aws::{self, Connection};
use messaging_stream::Config;
use std::sync::{Arc, Mutex};

/// Records each request's URI, then fails it before it is sent.
#[derive(Debug, Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

impl Intercept for Capture {
    fn name(&self) -> &'static str {
        "Capture"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0
            .lock()
            .unwrap()
            .push(context.request().uri().to_owned());
        Err("captured, not sent".into())
    }
}

/// Where a DynamoDB and a DynamoDB Streams client of `config` + `connection` send their requests
/// (scheme and host), and what `aws::dynamodb_endpoint` (ddb's "writing to ... at" line) says.
async fn destinations(config: &Config, connection: &Connection) -> (String, String, String) {
    let resolved = aws::resolve(config, connection).await;
    let capture = Capture::default();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws::dynamodb_config(&resolved.sdk)
            .interceptor(capture.clone())
            .build(),
    );
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(&resolved.sdk)
            .interceptor(capture.clone())
            .build(),
    );
    assert!(dynamodb.list_tables().send().await.is_err());
    assert!(streams.list_streams().send().await.is_err());
    let uris = capture.0.lock().unwrap().clone();
    assert_eq!(uris.len(), 2, "one request each, none retried: {uris:?}");
    let origin = |uri: &str| uri.trim_end_matches('/').to_owned();
    let said = aws::dynamodb_endpoint(&resolved.sdk).await.unwrap();
    (origin(&uris[0]), origin(&uris[1]), origin(&said))
}

#[test]
fn aws_means_aws_whatever_the_environment_and_profile_say_and_a_flag_beats_them() {
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("config");
    std::fs::write(
        &config_file,
        "[default]\nregion = eu-west-1\nendpoint_url = http://127.0.0.1:9001\nservices = local\n\n\
         [services local]\ndynamodb =\n  endpoint_url = http://127.0.0.1:9002\n\
         dynamodb_streams =\n  endpoint_url = http://127.0.0.1:9003\n",
    )
    .unwrap();
    // The only test of this binary, before any client exists (see the module's comment).
    for (name, value) in [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9004"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9005"),
        ("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "http://127.0.0.1:9006"),
        ("AWS_CONFIG_FILE", config_file.to_str().unwrap()),
        ("AWS_SHARED_CREDENTIALS_FILE", config_file.to_str().unwrap()),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        std::env::set_var(name, value);
    }
    for name in [
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_SESSION_TOKEN",
    ] {
        std::env::remove_var(name);
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // No retries: the captured request is failed on purpose.
    let config = Config {
        max_attempts: 1,
        ..Config::default()
    };

    // `--endpoint aws` (ddb also hides the endpoint variables from Config: endpoint_url None).
    let aws_only = Connection {
        region: Some("us-east-1".into()),
        aws_endpoints: true,
        ..Connection::default()
    };
    let (dynamodb, streams, said) = runtime.block_on(destinations(&config, &aws_only));
    assert_eq!(dynamodb, "https://dynamodb.us-east-1.amazonaws.com");
    assert_eq!(streams, "https://streams.dynamodb.us-east-1.amazonaws.com");
    assert_eq!(said, dynamodb);
    // The profile's region when no flag gives one.
    let (dynamodb, streams, _) = runtime.block_on(destinations(
        &config,
        &Connection {
            aws_endpoints: true,
            ..Connection::default()
        },
    ));
    assert_eq!(dynamodb, "https://dynamodb.eu-west-1.amazonaws.com");
    assert_eq!(streams, "https://streams.dynamodb.eu-west-1.amazonaws.com");

    // Without it, the configuration decides: AWS_ENDPOINT_URL_DYNAMODB first (aws-config's order),
    // for both clients of ddb (DynamoDB Local serves both).
    let local_default = Connection {
        default_endpoint: Some("http://127.0.0.1:8000".into()),
        ..Connection::default()
    };
    let (dynamodb, streams, said) = runtime.block_on(destinations(&config, &local_default));
    assert_eq!(dynamodb, "http://127.0.0.1:9005");
    assert_eq!(streams, "http://127.0.0.1:9005");
    assert_eq!(said, dynamodb);

    // An explicit endpoint (`--endpoint-url`) beats the environment and the profile.
    let explicit = Config {
        endpoint_url: Some("http://127.0.0.1:9007".into()),
        ..config.clone()
    };
    let (dynamodb, streams, said) = runtime.block_on(destinations(&explicit, &local_default));
    assert_eq!(dynamodb, "http://127.0.0.1:9007");
    assert_eq!(streams, "http://127.0.0.1:9007");
    assert_eq!(said, dynamodb);
}
