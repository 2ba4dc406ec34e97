//! The function's settings, read once from the environment at start-up.
//!
//! Everything tunable lives in [`Config`]; a bad value is a start-up error that names the
//! variable, never a surprise in the middle of a batch. The AWS SDK's own variables
//! (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL_DYNAMODB`) are left to aws-config's standard chain;
//! the retry variables are read here so that the defaults suit a stream consumer (adaptive mode).

use crate::model::DEFAULT_GROUP_INDEX_NAME;
use aws_config::retry::RetryConfig;
use std::str::FromStr;
use std::time::Duration;

/// Default table name, as in the Cruddur data model.
pub const DEFAULT_TABLE_NAME: &str = "cruddur-messages";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryMode {
    Standard,
    Adaptive,
}

/// All settings of the consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `TABLE_NAME`: the single table.
    pub table_name: String,
    /// `GROUP_INDEX_NAME`: the GSI keyed on `message_group_uuid`.
    pub group_index_name: String,
    /// `GROUP_CONCURRENCY`: groups of one batch processed at once.
    pub group_concurrency: usize,
    /// `CONDITION_RETRIES`: re-reads of a row after a failed condition (a lost race or a stale GSI read).
    pub condition_retries: u32,
    /// `CONFLICT_RETRIES`: retries of a transaction cancelled by a conflicting transaction.
    pub conflict_retries: u32,
    /// `AWS_MAX_ATTEMPTS`: SDK attempts per request (throttling, 5xx, connection errors).
    pub max_attempts: u32,
    /// `AWS_RETRY_MODE`: `adaptive` (default) or `standard`.
    pub retry_mode: RetryMode,
    /// `AWS_ENDPOINT_URL_DYNAMODB` (or `AWS_ENDPOINT_URL`): set for DynamoDB Local.
    pub endpoint_url: Option<String>,
    /// Connect timeout of one request.
    pub connect_timeout: Duration,
    /// Timeout of one request attempt; the SDK retries after it.
    pub attempt_timeout: Duration,
    /// `DEADLINE_MARGIN_MS`: groups still running this long before the invocation's deadline are
    /// reported as failed, so the response reaches Lambda before the timeout.
    pub deadline_margin: Duration,
    /// `PREVIEW_MAX_BYTES`: the longest last-message text a group row keeps (cut at a character
    /// boundary, `message_truncated` set). `None`: as long as the 400 KB item limit allows.
    pub preview_max_bytes: Option<usize>,
    /// `CACHE_TABLE_NAME`: the read-path cache the function invalidates; unset, the cache is off.
    /// (`CACHE_TTL_SECONDS` is the readers' setting, read where they fill: `ddb::reads::ttl_from_env`.)
    pub cache_table_name: Option<String>,
    /// `VALKEY_ENDPOINT`, `VALKEY_USER`, `VALKEY_CACHE_NAME`: the Valkey cache (ElastiCache Serverless)
    /// the function invalidates instead, with IAM authentication; unset, no Valkey cache. One cache at a
    /// time: with `CACHE_TABLE_NAME` set too, the settings are refused.
    pub valkey: Option<ValkeySettings>,
}

/// Where the Valkey cache is and who the function is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValkeySettings {
    /// The cache's TLS endpoint host (`VALKEY_ENDPOINT`, `host` or `host:port`).
    pub host: String,
    /// Its port: 6379 unless `VALKEY_ENDPOINT` says otherwise.
    pub port: u16,
    /// `VALKEY_USER`: the IAM-enabled ElastiCache user (its id and name are the same).
    pub user: String,
    /// `VALKEY_CACHE_NAME`: the cache's name, which the IAM token is signed for.
    pub cache_name: String,
}

/// The port of an ElastiCache endpoint when `VALKEY_ENDPOINT` names none.
pub const DEFAULT_VALKEY_PORT: u16 = 6379;

impl Default for Config {
    fn default() -> Self {
        Self {
            table_name: DEFAULT_TABLE_NAME.to_owned(),
            group_index_name: DEFAULT_GROUP_INDEX_NAME.to_owned(),
            group_concurrency: 16,
            condition_retries: 3,
            conflict_retries: 5,
            max_attempts: 5,
            retry_mode: RetryMode::Adaptive,
            endpoint_url: None,
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(5),
            deadline_margin: Duration::from_millis(1_500),
            preview_max_bytes: None,
            cache_table_name: None,
            valkey: None,
        }
    }
}

/// A setting that could not be used; names the variable and says what it takes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{variable}={value:?} is not valid: {expected}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment in production, a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let text = |variable: &'static str, default: String| -> Result<String, ConfigError> {
            match lookup(variable) {
                None => Ok(default),
                Some(value) if value.trim().is_empty() => Err(ConfigError {
                    variable,
                    value,
                    expected: "a non-empty name",
                }),
                Some(value) => Ok(value),
            }
        };
        let number =
            |variable: &'static str, default: u32, min: u32, max: u32, expected: &'static str| {
                match lookup(variable) {
                    None => Ok(default),
                    Some(value) => match u32::from_str(value.trim()) {
                        Ok(n) if (min..=max).contains(&n) => Ok(n),
                        _ => Err(ConfigError {
                            variable,
                            value,
                            expected,
                        }),
                    },
                }
            };
        let retry_mode = match lookup("AWS_RETRY_MODE").as_deref().map(str::trim) {
            None | Some("adaptive") => RetryMode::Adaptive,
            Some("standard") => RetryMode::Standard,
            Some(other) => {
                return Err(ConfigError {
                    variable: "AWS_RETRY_MODE",
                    value: other.to_owned(),
                    expected: "`adaptive` or `standard`",
                })
            }
        };
        let endpoint_url = lookup("AWS_ENDPOINT_URL_DYNAMODB")
            .or_else(|| lookup("AWS_ENDPOINT_URL"))
            .filter(|url| !url.trim().is_empty());
        if let Some(url) = endpoint_url.as_ref().filter(|u| check_endpoint(u).is_err()) {
            return Err(ConfigError {
                variable: match lookup("AWS_ENDPOINT_URL_DYNAMODB") {
                    Some(_) => "AWS_ENDPOINT_URL_DYNAMODB",
                    None => "AWS_ENDPOINT_URL",
                },
                value: url.clone(),
                expected: "a URL with its scheme and host, such as http://127.0.0.1:8000",
            });
        }
        let cache_table_name = lookup("CACHE_TABLE_NAME")
            .map(|_| text("CACHE_TABLE_NAME", String::new()))
            .transpose()?;
        let valkey = match lookup("VALKEY_ENDPOINT") {
            None => None,
            Some(endpoint) => {
                let Some((host, port)) = host_and_port(&endpoint) else {
                    return Err(ConfigError {
                        variable: "VALKEY_ENDPOINT",
                        value: endpoint,
                        expected: "the cache's endpoint: host or host:port",
                    });
                };
                if cache_table_name.is_some() {
                    return Err(ConfigError {
                        variable: "VALKEY_ENDPOINT",
                        value: endpoint,
                        expected: "unset while CACHE_TABLE_NAME is set: one cache at a time",
                    });
                }
                let required = |variable: &'static str| match lookup(variable) {
                    Some(value) if !value.trim().is_empty() => Ok(value.trim().to_owned()),
                    value => Err(ConfigError {
                        variable,
                        value: value.unwrap_or_default(),
                        expected: "a name, with VALKEY_ENDPOINT",
                    }),
                };
                Some(ValkeySettings {
                    host,
                    port,
                    user: required("VALKEY_USER")?,
                    cache_name: required("VALKEY_CACHE_NAME")?,
                })
            }
        };
        Ok(Self {
            table_name: text("TABLE_NAME", defaults.table_name)?,
            group_index_name: text("GROUP_INDEX_NAME", defaults.group_index_name)?,
            group_concurrency: number(
                "GROUP_CONCURRENCY",
                16,
                1,
                256,
                "a whole number from 1 to 256",
            )? as usize,
            condition_retries: number(
                "CONDITION_RETRIES",
                3,
                0,
                20,
                "a whole number from 0 to 20",
            )?,
            conflict_retries: number("CONFLICT_RETRIES", 5, 0, 20, "a whole number from 0 to 20")?,
            max_attempts: number("AWS_MAX_ATTEMPTS", 5, 1, 20, "a whole number from 1 to 20")?,
            retry_mode,
            endpoint_url,
            deadline_margin: Duration::from_millis(u64::from(number(
                "DEADLINE_MARGIN_MS",
                1_500,
                0,
                60_000,
                "milliseconds from 0 to 60000",
            )?)),
            preview_max_bytes: match lookup("PREVIEW_MAX_BYTES") {
                None => None,
                Some(_) => Some(number(
                    "PREVIEW_MAX_BYTES",
                    0,
                    1,
                    crate::size::MAX_ITEM_BYTES as u32,
                    "a whole number of bytes from 1 to 409600",
                )? as usize),
            },
            cache_table_name,
            valkey,
            ..defaults
        })
    }

    /// The SDK retry policy: throttling, 5xx and transient network errors are retried by the SDK.
    pub fn retry_config(&self) -> RetryConfig {
        let base = match self.retry_mode {
            RetryMode::Adaptive => RetryConfig::adaptive(),
            RetryMode::Standard => RetryConfig::standard(),
        };
        base.with_max_attempts(self.max_attempts)
    }

    /// True when the endpoint is on this machine (DynamoDB Local): no AWS account is involved.
    pub fn is_local_endpoint(&self) -> bool {
        self.endpoint_url.as_deref().is_some_and(|url| {
            let host = url.split("://").nth(1).unwrap_or(url);
            ["127.", "localhost", "[::1]"]
                .iter()
                .any(|local| host.starts_with(local))
        })
    }
}

/// `host` or `host:port` (no scheme: the connection is always TLS), the port 6379 by default.
fn host_and_port(endpoint: &str) -> Option<(String, u16)> {
    let endpoint = endpoint.trim();
    let (host, port) = match endpoint.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok().filter(|p| *p > 0)?),
        None => (endpoint, DEFAULT_VALKEY_PORT),
    };
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    valid.then(|| (host.to_owned(), port))
}

/// An endpoint URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("endpoint {url:?} has no scheme: use http://{url}")]
    NoScheme { url: String },
    #[error("endpoint {url:?} is not a URL: use e.g. http://127.0.0.1:8000")]
    NotAUrl { url: String },
}

/// Checks that `url` is an http(s) URL with a host (the SDK's own message for this is unreadable).
pub fn check_endpoint(url: &str) -> Result<(), EndpointError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(EndpointError::NoScheme {
            url: url.to_owned(),
        });
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let valid_scheme = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    if !valid_scheme || host.is_empty() || host.contains(char::is_whitespace) {
        return Err(EndpointError::NotAUrl {
            url: url.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_follow_the_data_model() {
        let config = read(&[]).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.table_name, "cruddur-messages");
        assert_eq!(config.retry_mode, RetryMode::Adaptive);
        assert_eq!(config.retry_config().max_attempts(), 5);
    }

    #[test]
    fn reads_every_variable() {
        let config = read(&[
            ("TABLE_NAME", "t"),
            ("GROUP_INDEX_NAME", "i"),
            ("GROUP_CONCURRENCY", "4"),
            ("CONDITION_RETRIES", "0"),
            ("CONFLICT_RETRIES", "2"),
            ("AWS_MAX_ATTEMPTS", "3"),
            ("AWS_RETRY_MODE", "standard"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
            ("DEADLINE_MARGIN_MS", "250"),
            ("PREVIEW_MAX_BYTES", "256"),
        ])
        .unwrap();
        assert_eq!(
            (config.table_name.as_str(), config.group_index_name.as_str()),
            ("t", "i")
        );
        assert_eq!(
            (
                config.group_concurrency,
                config.condition_retries,
                config.conflict_retries
            ),
            (4, 0, 2)
        );
        assert_eq!(
            (config.max_attempts, config.retry_mode),
            (3, RetryMode::Standard)
        );
        assert!(config.is_local_endpoint());
        assert_eq!(config.deadline_margin, Duration::from_millis(250));
        assert_eq!(config.preview_max_bytes, Some(256));
    }

    #[test]
    fn valkey_is_off_unless_its_endpoint_is_set_and_then_needs_its_user_and_cache_name() {
        assert_eq!(read(&[]).unwrap().valkey, None);
        let endpoint = "cruddur-cache-prod-abc123.serverless.use1.cache.amazonaws.com";
        let full = [
            ("VALKEY_ENDPOINT", endpoint),
            ("VALKEY_USER", "cruddur-messaging-stream"),
            ("VALKEY_CACHE_NAME", "cruddur-cache-prod"),
        ];
        assert_eq!(
            read(&full).unwrap().valkey,
            Some(ValkeySettings {
                host: endpoint.into(),
                port: 6379,
                user: "cruddur-messaging-stream".into(),
                cache_name: "cruddur-cache-prod".into(),
            })
        );
        let with_port = format!("{endpoint}:6380");
        let mut vars = full;
        vars[0].1 = &with_port;
        assert_eq!(read(&vars).unwrap().valkey.unwrap().port, 6380);
        for bad in ["rediss://host:6379", "host:0", "host:port", "", ":6379"] {
            vars[0].1 = bad;
            assert_eq!(
                read(&vars).unwrap_err().variable,
                "VALKEY_ENDPOINT",
                "{bad}"
            );
        }
        assert_eq!(read(&full[..2]).unwrap_err().variable, "VALKEY_CACHE_NAME");
        assert_eq!(
            read(&[full[0], full[2], ("VALKEY_USER", " ")])
                .unwrap_err()
                .variable,
            "VALKEY_USER"
        );
        let both = [&full[..], &[("CACHE_TABLE_NAME", "cruddur-cache-prod")]].concat();
        let error = read(&both).unwrap_err();
        assert_eq!(error.variable, "VALKEY_ENDPOINT");
        assert!(error.to_string().contains("one cache at a time"), "{error}");
    }

    #[test]
    fn the_cache_is_off_unless_its_table_is_named() {
        assert_eq!(read(&[]).unwrap().cache_table_name, None);
        let config = read(&[("CACHE_TABLE_NAME", "cruddur-cache-prod")]).unwrap();
        assert_eq!(
            config.cache_table_name.as_deref(),
            Some("cruddur-cache-prod")
        );
        assert_eq!(
            read(&[("CACHE_TABLE_NAME", "")]).unwrap_err().variable,
            "CACHE_TABLE_NAME"
        );
    }

    /// The function never fills the cache, so the readers' TTL is not its setting: a value the
    /// readers would refuse (issue 17: `CACHE_TTL_SECONDS=0` stopped the function) changes nothing here.
    #[test]
    fn the_readers_ttl_is_not_the_functions_setting() {
        for value in ["0", "forever", ""] {
            let config = read(&[
                ("CACHE_TABLE_NAME", "cruddur-cache-prod"),
                ("CACHE_TTL_SECONDS", value),
            ])
            .unwrap();
            assert_eq!(
                config,
                read(&[("CACHE_TABLE_NAME", "cruddur-cache-prod")]).unwrap()
            );
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        let error = read(&[("GROUP_CONCURRENCY", "0")]).unwrap_err();
        assert_eq!(error.variable, "GROUP_CONCURRENCY");
        assert!(
            error.to_string().contains("GROUP_CONCURRENCY=\"0\""),
            "{error}"
        );
        assert_eq!(
            read(&[("AWS_RETRY_MODE", "legacy")]).unwrap_err().variable,
            "AWS_RETRY_MODE"
        );
        assert_eq!(
            read(&[("AWS_MAX_ATTEMPTS", "many")]).unwrap_err().variable,
            "AWS_MAX_ATTEMPTS"
        );
        assert_eq!(
            read(&[("TABLE_NAME", " ")]).unwrap_err().variable,
            "TABLE_NAME"
        );
        let endpoint = read(&[("AWS_ENDPOINT_URL_DYNAMODB", "127.0.0.1:8000")]).unwrap_err();
        assert_eq!(endpoint.variable, "AWS_ENDPOINT_URL_DYNAMODB");
        for bad in ["0", "409601", "lots"] {
            assert_eq!(
                read(&[("PREVIEW_MAX_BYTES", bad)]).unwrap_err().variable,
                "PREVIEW_MAX_BYTES"
            );
        }
    }

    #[test]
    fn only_loopback_endpoints_are_local() {
        let with = |url: &str| {
            read(&[("AWS_ENDPOINT_URL_DYNAMODB", url)])
                .unwrap()
                .is_local_endpoint()
        };
        assert!(with("http://localhost:8000"));
        assert!(!with("https://dynamodb.eu-west-1.amazonaws.com"));
        assert!(!read(&[]).unwrap().is_local_endpoint());
    }

    #[test]
    fn an_endpoint_needs_a_scheme_and_a_host() {
        assert_eq!(
            check_endpoint("127.0.0.1:8000").unwrap_err().to_string(),
            "endpoint \"127.0.0.1:8000\" has no scheme: use http://127.0.0.1:8000"
        );
        assert!(check_endpoint("http://dynamodb-local:8000").is_ok());
        assert!(check_endpoint("https://dynamodb.eu-west-1.amazonaws.com/").is_ok());
        assert!(check_endpoint("ftp://x").is_err());
        assert!(check_endpoint("http://").is_err());
    }
}
