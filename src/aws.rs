//! Building AWS SDK clients from [`Config`]: retry policy, timeouts, endpoint, region and
//! credentials, resolved as the AWS CLI resolves them; and what a failed request says about the
//! set-up ([`Setup`]).
//!
//! Built once at start-up and shared by every invocation. The endpoint is the explicit one
//! (`Config::endpoint_url`: `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL`, or a tool's
//! `--endpoint-url`), else the profile's `endpoint_url` (aws-config's service configuration),
//! else the tool's default; a tool's `--endpoint aws` ([`Connection::aws_endpoints`]) is AWS's
//! own endpoints whatever the environment and the profile say. The region never comes from
//! instance metadata: the flag, the environment, the profile, and `us-east-1` when an endpoint is
//! set. With an endpoint set, credentials are the environment's or the profile's, and when neither
//! has any, placeholder credentials (DynamoDB Local accepts any; it is said once at DEBUG): never
//! an instance-metadata probe.

use crate::config::Config;
use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::{ProfileFileCredentialsProvider, ProfileFileRegionProvider};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{future, ProvideCredentials};
use aws_credential_types::Credentials;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_types::origin::Origin;
use aws_types::service_config::ServiceConfigKey;

/// The region used with an endpoint when nothing configures one (DynamoDB Local does not care,
/// but without `-sharedDb` it keeps one database per key and region).
pub const PLACEHOLDER_REGION: &str = "us-east-1";

/// What a tool adds to [`Config`], as the AWS CLI's options do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Connection {
    /// `--profile` (else `AWS_PROFILE`, else `default`).
    pub profile: Option<String>,
    /// `--region` (else `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's).
    pub region: Option<String>,
    /// The endpoint when none is configured anywhere (`ddb`: DynamoDB Local on 127.0.0.1:8000).
    pub default_endpoint: Option<String>,
    /// `ddb --endpoint aws`: every service (DynamoDB, DynamoDB Streams) at AWS's own endpoint,
    /// whatever `AWS_ENDPOINT_URL*`, a profile's `endpoint_url` or `services` section say (what
    /// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true` does, for this process only).
    pub aws_endpoints: bool,
    /// The retry policy, when the tool wants its own rather than [`Config::retry_config`].
    pub retry: Option<RetryConfig>,
}

// The check is the configuration's own (config must not import this module); tools call it here.
pub use crate::config::{check_endpoint, EndpointError};

/// The SDK configuration and the DynamoDB endpoint it resolved to (`None`: AWS's own).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub sdk: SdkConfig,
    pub endpoint: Option<String>,
}

/// Loads the shared SDK configuration (credentials, region, endpoint) for `config`.
pub async fn sdk_config(config: &Config) -> SdkConfig {
    resolve(config, &Connection::default()).await.sdk
}

/// Loads the shared SDK configuration for `config` and a tool's `connection` options.
pub async fn resolve(config: &Config, connection: &Connection) -> Resolved {
    let region = region_chain(connection);
    let endpoint = if connection.aws_endpoints {
        None
    } else {
        match &config.endpoint_url {
            Some(endpoint) => Some(endpoint.clone()),
            None => configured_endpoint(connection).await,
        }
        .or_else(|| connection.default_endpoint.clone())
    };
    let retry = connection
        .retry
        .clone()
        .unwrap_or_else(|| config.retry_config());
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(config.connect_timeout)
                .operation_attempt_timeout(config.attempt_timeout)
                .build(),
        )
        .region(region);
    if let Some(profile) = &connection.profile {
        loader = loader.profile_name(profile);
    }
    let Some(endpoint) = endpoint else {
        let sdk = loader.load().await;
        if !connection.aws_endpoints {
            return Resolved {
                sdk,
                endpoint: None,
            };
        }
        // No endpoint, set as if in code: every client then takes it as it is (none: the SDK's
        // own, AWS's) and never reads AWS_ENDPOINT_URL_<SERVICE> or the profile's `services`.
        let mut builder = sdk.to_builder();
        builder.set_endpoint_url(None);
        builder.insert_origin("endpoint_url", Origin::shared_config());
        return Resolved {
            sdk: builder.build(),
            endpoint: None,
        };
    };
    // Given before loading, so that the default chain (which probes instance metadata for a
    // region) is never built. An endpoint given to the loader is one given in code: every client
    // of this config (DynamoDB and its Streams) uses it.
    let sdk = loader
        .endpoint_url(endpoint.clone())
        .credentials_provider(placeholder_chain(connection, &endpoint))
        .load()
        .await;
    if sdk.region().is_some() {
        return Resolved {
            sdk,
            endpoint: Some(endpoint),
        };
    }
    let mut builder = sdk.to_builder();
    builder.set_region(Region::new(PLACEHOLDER_REGION));
    Resolved {
        sdk: builder.build(),
        endpoint: Some(endpoint),
    }
}

/// The region: the flag, the environment, the profile; never instance metadata.
fn region_chain(connection: &Connection) -> RegionProviderChain {
    let profile_region = match &connection.profile {
        Some(profile) => ProfileFileRegionProvider::builder()
            .profile_name(profile)
            .build(),
        None => ProfileFileRegionProvider::new(),
    };
    RegionProviderChain::first_try(connection.region.clone().map(Region::new))
        .or_else(EnvironmentVariableRegionProvider::new())
        .or_else(profile_region)
}

/// The region `connection` configures, if any (before [`resolve`], which without a region and an
/// endpoint would let aws-config's default credentials chain look for one in instance metadata).
pub async fn configured_region(connection: &Connection) -> Option<Region> {
    region_chain(connection).region().await
}

/// Where a DynamoDB client of `sdk` sends its requests, by the SDK's own endpoint rules (no
/// network call): the endpoint the client takes from `sdk` (as `aws_sdk_dynamodb::Config`'s
/// `From<&SdkConfig>` picks it), else AWS's for the region.
pub async fn dynamodb_endpoint(sdk: &SdkConfig) -> Result<String, String> {
    use aws_sdk_dynamodb::config::endpoint::{DefaultResolver, Params, ResolveEndpoint as _};
    let configured = if sdk.get_origin("endpoint_url").is_client_config() {
        sdk.endpoint_url().map(str::to_owned)
    } else {
        ServiceConfigKey::builder()
            .service_id("DynamoDB")
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .ok()
            .and_then(|key| sdk.service_config()?.load_config(key))
            .or_else(|| sdk.endpoint_url().map(str::to_owned))
    };
    let params = Params::builder()
        .set_region(sdk.region().map(|r| r.as_ref().to_owned()))
        .set_use_fips(sdk.use_fips())
        .set_use_dual_stack(sdk.use_dual_stack())
        .set_endpoint(configured)
        .build()
        .map_err(|e| e.to_string())?;
    let endpoint = DefaultResolver::new()
        .resolve_endpoint(&params)
        .await
        .map_err(|e| e.to_string())?;
    Ok(endpoint.url().to_owned())
}

/// The endpoint the environment or the profile configures for DynamoDB (aws-config's own
/// resolution: `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL`, the profile's `services`
/// section and `endpoint_url`), read without any network call.
async fn configured_endpoint(connection: &Connection) -> Option<String> {
    let mut probe = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(PLACEHOLDER_REGION))
        .credentials_provider(Placeholder {
            endpoint: String::new(),
        });
    if let Some(profile) = &connection.profile {
        probe = probe.profile_name(profile);
    }
    let sdk = probe.load().await;
    let key = ServiceConfigKey::builder()
        .service_id("DynamoDB")
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()
        .ok()?;
    sdk.service_config()
        .and_then(|service| service.load_config(key))
        .or_else(|| sdk.endpoint_url().map(str::to_owned))
}

/// The environment's credentials, else the profile's, else placeholders: never instance metadata.
fn placeholder_chain(connection: &Connection, endpoint: &str) -> CredentialsProviderChain {
    let profile_credentials = match &connection.profile {
        Some(profile) => ProfileFileCredentialsProvider::builder()
            .profile_name(profile)
            .build(),
        None => ProfileFileCredentialsProvider::builder().build(),
    };
    CredentialsProviderChain::first_try(
        "Environment",
        EnvironmentVariableCredentialsProvider::new(),
    )
    .or_else("Profile", profile_credentials)
    .or_else(
        "Placeholder",
        Placeholder {
            endpoint: endpoint.to_owned(),
        },
    )
}

/// Credentials for an endpoint that needs none that are real (DynamoDB Local, or a proxy of it).
#[derive(Debug)]
struct Placeholder {
    endpoint: String,
}

impl ProvideCredentials for Placeholder {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        tracing::debug!(
            endpoint = %self.endpoint,
            "no credentials configured: using placeholder credentials (access key `local`)"
        );
        future::ProvideCredentials::ready(Ok(Credentials::new(
            "local",
            "local",
            None,
            None,
            "placeholder",
        )))
    }
}

/// The DynamoDB client configuration of `sdk`, with the interceptor that counts each
/// invocation's requests for its metrics ([`crate::request_count::RequestCounter`]).
pub fn dynamodb_config(sdk: &SdkConfig) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::from(sdk).interceptor(crate::request_count::RequestCounter)
}

/// A DynamoDB client for `config`.
pub async fn dynamodb_client(config: &Config) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(dynamodb_config(&sdk_config(config).await).build())
}

/// A failed request that says nothing about the data: the set-up is at fault, and no retry of the
/// records can help until it is fixed (`ddb` says how; `ddb replay` exits 1 on it, not 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// Nothing answered (connection refused, timed out, no such host), or what answered did not
    /// speak DynamoDB.
    Unreachable,
    /// The request could not be made: no credentials or no region.
    NotConfigured,
    /// DynamoDB refused the credentials, or their permissions.
    Credentials,
    /// The table does not exist (ResourceNotFoundException).
    MissingTable,
    /// The table has no such index (a ValidationException naming it).
    MissingIndex,
    /// The read-path cache table does not exist.
    MissingCacheTable,
}

/// DynamoDB's codes for credentials it does not accept, or that may not do this.
const CREDENTIAL_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "IncompleteSignatureException",
    "MissingAuthenticationTokenException",
    "MissingAuthenticationToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "AccessDeniedException",
];

impl Setup {
    /// The set-up problem behind `error`, if it is one.
    pub fn of<E, R>(error: &SdkError<E, R>) -> Option<Self>
    where
        E: ProvideErrorMetadata,
    {
        match error {
            SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
                Some(Self::Unreachable)
            }
            SdkError::TimeoutError(_) | SdkError::ResponseError(_) => Some(Self::Unreachable),
            // Before anything was sent: resolving credentials or the endpoint failed.
            SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) => {
                Some(Self::NotConfigured)
            }
            _ => Self::of_code(error.code()?, error.message().unwrap_or_default()),
        }
    }

    /// The set-up problem an error code and message of DynamoDB name, if any.
    pub fn of_code(code: &str, message: &str) -> Option<Self> {
        match code {
            "ResourceNotFoundException" => Some(Self::MissingTable),
            // DynamoDB and DynamoDB Local: "The table does not have the specified index: NAME".
            "ValidationException" if message.contains("does not have the specified index") => {
                Some(Self::MissingIndex)
            }
            code if CREDENTIAL_CODES.contains(&code) => Some(Self::Credentials),
            _ => None,
        }
    }
}

impl std::fmt::Display for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unreachable => "DynamoDB could not be reached",
            Self::NotConfigured => "no credentials or no region to sign a request with",
            Self::Credentials => "DynamoDB refused the credentials",
            Self::MissingTable => "the table does not exist",
            Self::MissingIndex => "the table has no group index",
            Self::MissingCacheTable => "the cache table does not exist",
        })
    }
}

/// A request that failed after the SDK's retries: the SDK's whole explanation, and the set-up
/// problem it shows, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub text: String,
    pub setup: Option<Setup>,
}

impl Failure {
    pub fn of<E, R>(error: &SdkError<E, R>) -> Self
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
        R: std::fmt::Debug,
    {
        Self {
            text: DisplayErrorContext(error).to_string(),
            setup: Setup::of(error),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// DynamoDB's code and message for a service error; for an error on the way (no answer), a short
/// name of what happened and the innermost cause's text.
pub fn describe_error<E>(error: &E) -> (String, String)
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    if let Some(code) = error.code() {
        let message = error.message().unwrap_or("(no message)").to_owned();
        return (code.to_owned(), message);
    }
    let mut innermost: &dyn std::error::Error = error;
    let mut kind = None;
    let mut cause: Option<&dyn std::error::Error> = Some(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            kind = kind.or(match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Some("connection refused"),
                std::io::ErrorKind::TimedOut => Some("timeout"),
                _ => None,
            });
        }
        let text = current.to_string();
        if kind.is_none() && text.contains("Connection refused") {
            kind = Some("connection refused");
        }
        if kind.is_none() && text.to_ascii_lowercase().contains("timed out") {
            kind = Some("timeout");
        }
        innermost = current;
        cause = current.source();
    }
    let message = match kind {
        Some("connection refused") => "nothing answers at the endpoint".to_owned(),
        _ => innermost.to_string(),
    };
    (kind.unwrap_or("no response").to_owned(), message)
}
