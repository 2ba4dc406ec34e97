//! Building AWS SDK clients from [`Config`]: retry policy, timeouts and the local endpoint.
//!
//! Built once at start-up and shared by every invocation. Against a loopback endpoint
//! (DynamoDB Local) no AWS account is needed, so placeholder credentials and a region are supplied
//! when the environment has none, instead of letting the credential chain probe instance metadata.

use crate::config::Config;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Loads the shared SDK configuration (credentials, region, endpoint) for `config`.
pub async fn sdk_config(config: &Config) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(config.retry_config())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(config.connect_timeout)
                .operation_attempt_timeout(config.attempt_timeout)
                .build(),
        );
    if let Some(endpoint) = &config.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    if config.is_local_endpoint() {
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
            && std::env::var_os("AWS_PROFILE").is_none()
        {
            loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local",
                "local",
                None,
                None,
                "dynamodb-local",
            ));
        }
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            loader = loader.region(Region::new("us-east-1"));
        }
    }
    loader.load().await
}

/// The DynamoDB client configuration of `sdk`, with the interceptor that counts each
/// invocation's requests for its metrics ([`crate::metrics::RequestCounter`]).
pub fn dynamodb_config(sdk: &SdkConfig) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(crate::metrics::RequestCounter)
}

/// A DynamoDB client for `config`.
pub async fn dynamodb_client(config: &Config) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(dynamodb_config(&sdk_config(config).await).build())
}
