//! The CLI's connection: the Lambda's [`Config`] with the global flags over the environment
//! (`--endpoint-url`/`aws`, `--profile`, `--region`, `--table`, `--cache-table`), ddb's own retry
//! pace, and the clients built from them. The endpoint, region and credentials are resolved by
//! `messaging_stream::aws` (aws-config's own resolution); this module only says what ddb asks
//! for. It also builds the Lambda's [`App`] through the Lambda's own constructor, the Valkey cache
//! `VALKEY_ENDPOINT` names (as the function connects, or locally with a password), and says once
//! where a writing command writes.

use crate::cli::Cli;
use crate::commands::CommandError;
use crate::output;
use aws_config::SdkConfig;
use messaging_stream::aws::Connection;
use messaging_stream::cache::valkey::{self, Endpoint, Password, ValkeyCache};
use messaging_stream::config::ConfigError;
use messaging_stream::metrics::{Metrics, MetricsConfig, Output as MetricsOutput};
use messaging_stream::{App, Config};
use std::sync::Arc;
use std::time::Duration;

/// The bound of a read, lease or fill of the Valkey cache from `ddb`, connecting included. Each run
/// is a new process whose first connection pays TLS's one-time set-up inside that bound: a debug
/// build's first `get` took 84 ms on this 2-core machine idle and 168-213 ms beside four busy loops
/// (a throwaway test, 2026-12-07), and a test of `ddb` beside a parallel build once got a miss where
/// it expected a fill, most likely the 500 ms default (meant for readers that keep their connection).
/// A timeout is still a miss, never a failure.
pub const CLI_READ_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the Makefile runs DynamoDB Local.
const LOCAL_ENDPOINT: &str = "http://127.0.0.1:8000";
/// `--endpoint aws`: AWS's own endpoints (DynamoDB and DynamoDB Streams differ there), whatever the
/// environment and the profile configure.
const AWS_ENDPOINTS: &str = "aws";
/// ddb's first retry waits about this long, then twice as long each time (the SDK's back-off): a
/// person waits on ddb, and a refused connection is not worth seconds of back-off.
const RETRY_INITIAL_BACKOFF: Duration = Duration::from_millis(100);

/// What the global flags ask for, checked, before anything connects (`ddb event` and `ddb local`
/// never do).
#[derive(Debug, Clone)]
pub struct Target {
    /// The Lambda's settings, the flags over the environment.
    pub config: Config,
    /// Whether `--table` was given (redrive then ignores the table a failure record names).
    pub table_given: bool,
    connection: Connection,
}

impl Target {
    /// The flags over the environment; a bad endpoint or setting is refused here.
    pub fn from_cli(cli: &Cli) -> Result<Self, CommandError> {
        let config = config(cli)?;
        let aws_endpoints = cli.endpoint.as_deref() == Some(AWS_ENDPOINTS);
        let connection = Connection {
            profile: cli.profile.clone(),
            region: cli.region.clone(),
            default_endpoint: (!aws_endpoints).then(|| LOCAL_ENDPOINT.to_owned()),
            aws_endpoints,
            retry: Some(
                config
                    .retry_config()
                    .with_initial_backoff(RETRY_INITIAL_BACKOFF),
            ),
        };
        Ok(Self {
            config,
            table_given: cli.table.is_some(),
            connection,
        })
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.config.table_name
    }

    /// Resolves the endpoint, region and credentials and builds the DynamoDB client.
    pub async fn connect(&self) -> Result<Session, CommandError> {
        if self.connection.aws_endpoints
            && messaging_stream::aws::configured_region(&self.connection)
                .await
                .is_none()
        {
            return Err(CommandError::Said(
                "--endpoint aws needs a region: --region, AWS_REGION or the profile's region"
                    .to_owned(),
            ));
        }
        let resolved = messaging_stream::aws::resolve(&self.config, &self.connection).await;
        if let Some(endpoint) = &resolved.endpoint {
            messaging_stream::aws::check_endpoint(endpoint)?;
        }
        let region = resolved
            .sdk
            .region()
            .map_or_else(|| "(none)".to_owned(), ToString::to_string);
        let endpoint = messaging_stream::aws::dynamodb_endpoint(&resolved.sdk)
            .await
            .map_err(|e| {
                CommandError::Said(format!("no DynamoDB endpoint for region {region}: {e}"))
            })?;
        tracing::debug!(endpoint = %endpoint, region = %region, "ddb connects");
        let client = aws_sdk_dynamodb::Client::from_conf(
            messaging_stream::aws::dynamodb_config(&resolved.sdk).build(),
        );
        Ok(Session {
            config: self.config.clone(),
            table_given: self.table_given,
            client,
            sdk: resolved.sdk,
            endpoint: endpoint.clone(),
            writing: format!(
                "writing to table {} at {endpoint} (region {region})",
                self.config.table_name
            ),
        })
    }
}

/// The Lambda's config, with the flags over the environment.
fn config(cli: &Cli) -> Result<Config, CommandError> {
    let flag_endpoint = cli.endpoint.is_some();
    let mut config = Config::from_lookup(|name| {
        // A flag wins over the environment, even over a bad value there.
        let endpoint_variable = matches!(name, "AWS_ENDPOINT_URL_DYNAMODB" | "AWS_ENDPOINT_URL");
        if flag_endpoint && endpoint_variable {
            return None;
        }
        std::env::var(name).ok()
    })?;
    match &cli.endpoint {
        // DynamoDB and DynamoDB Streams at their AWS endpoints (`ddb redrive` in production).
        Some(endpoint) if endpoint == AWS_ENDPOINTS => config.endpoint_url = None,
        Some(endpoint) => {
            messaging_stream::aws::check_endpoint(endpoint)?;
            config.endpoint_url = Some(endpoint.clone());
        }
        None => {}
    }
    if let Some(table) = &cli.table {
        config.table_name = table.clone();
    }
    if let Some(cache) = &cli.cache_table {
        config.cache_table_name = Some(cache.clone());
    }
    Ok(config)
}

/// A connected command's clients and settings.
#[derive(Debug, Clone)]
pub struct Session {
    pub config: Config,
    /// Whether `--table` was given.
    pub table_given: bool,
    /// DynamoDB at the resolved endpoint.
    pub client: aws_sdk_dynamodb::Client,
    sdk: SdkConfig,
    /// The DynamoDB endpoint the client resolved to.
    endpoint: String,
    /// `writing to table T at <endpoint> (region R)`.
    writing: String,
}

impl Session {
    /// The table's name.
    pub fn table(&self) -> &str {
        &self.config.table_name
    }

    /// The DynamoDB endpoint the client resolved to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Says where the command writes, before it writes anything, so that production is never
    /// written by surprise.
    pub fn say_writing(&self) {
        output::note(&self.writing);
    }

    /// DynamoDB Streams, at the same endpoint and with the same credentials.
    pub fn streams(&self) -> aws_sdk_dynamodbstreams::Client {
        aws_sdk_dynamodbstreams::Client::new(&self.sdk)
    }

    /// The Lambda's app on this client (with a cache table set, or `VALKEY_ENDPOINT`, it invalidates
    /// that cache), built by the Lambda's own constructor.
    pub fn app(&self) -> Result<App, CommandError> {
        let app = App::on_client(self.client.clone(), self.config.clone());
        Ok(match self.valkey_cache()? {
            Some(cache) => app.with_cache(Arc::new(cache)),
            None => app,
        })
    }

    /// The Valkey cache `VALKEY_ENDPOINT` names, if any, its reads bounded by [`CLI_READ_TIMEOUT`]:
    /// as the function connects (IAM tokens signed with this session's credentials and region) or,
    /// with `VALKEY_PASSWORD` (a local server's ACL user; never the function's), with that password.
    /// `VALKEY_CA_FILE`: a CA certificate (PEM) to trust instead of the system's roots (a local
    /// server's).
    pub fn valkey_cache(&self) -> Result<Option<ValkeyCache>, CommandError> {
        let Some(settings) = &self.config.valkey else {
            return Ok(None);
        };
        let mut cache = match std::env::var("VALKEY_PASSWORD") {
            Ok(password) => ValkeyCache::new(
                Endpoint::new(settings.host.clone(), settings.port),
                settings.user.clone(),
                Arc::new(Password::new(password)),
            ),
            Err(_) => ValkeyCache::with_iam(
                settings,
                self.sdk.credentials_provider(),
                self.sdk.region().map(ToString::to_string),
            ),
        }
        .with_timeouts(CLI_READ_TIMEOUT, valkey::INVALIDATE_TIMEOUT);
        if let Ok(path) = std::env::var("VALKEY_CA_FILE") {
            let pem = std::fs::read(&path).map_err(|_| ConfigError {
                variable: "VALKEY_CA_FILE",
                value: path.clone(),
                expected: "a readable PEM file of the CA that signed the server's certificate",
            })?;
            let endpoint = cache.endpoint().clone().with_root_certificate(pem);
            cache = cache.with_endpoint(endpoint);
        }
        Ok(Some(cache))
    }

    /// [`Session::app`], emitting each invocation's metrics to stderr when `asked` (named as the
    /// environment says, `METRICS` aside: the flag is the switch here).
    pub fn app_with_metrics(&self, asked: bool) -> Result<App, CommandError> {
        if !asked {
            return self.app();
        }
        let config = MetricsConfig {
            enabled: true,
            ..MetricsConfig::from_env()?
        };
        Ok(self
            .app()?
            .with_metrics(Metrics::new(config, MetricsOutput::Stderr)))
    }
}
