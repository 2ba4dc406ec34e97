//! The log subscriber of the Lambda and of `ddb`, and the cap that keeps message text out of it.
//!
//! Format and level are read as `lambda_runtime::tracing::init_default_subscriber` reads them
//! (`AWS_LAMBDA_LOG_FORMAT`; `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else INFO; `RUST_LOG`'s
//! directives on top), but the subscriber is built here, because that function takes no extra
//! filter and two are needed:
//!
//! - **The cap.** Every target that is not ours (`messaging_stream`, `ddb`) logs at most DEBUG. At
//!   TRACE the SDK's orchestrator prints request and response bodies, `lambda_runtime` the raw
//!   event, hyper and h2 their frames: all of them carry users' messages. Capping every foreign
//!   crate, not a list of them, also covers a crate a future dependency brings. The cap is a filter
//!   of its own, ANDed with the level filter: an `EnvFilter` directive would be outranked by a more
//!   specific one (`aws_smithy_runtime::client::orchestrator=trace` beats `aws_smithy_runtime=debug`),
//!   a separate filter cannot be.
//! - **Our own lines at the configured level**, whatever `RUST_LOG`'s directives say: its directives
//!   can turn other targets up (`hyper=trace`), they never turn the function's warnings and batch
//!   summary off (an `EnvFilter` with any directive drops its default level for every other target).
//!   An empty `RUST_LOG` counts as unset (tracing would read it as ERROR).

use crate::config::ConfigError;
use lambda_runtime::tracing::subscriber::filter::{filter_fn, EnvFilter, FilterExt, LevelFilter};
use lambda_runtime::tracing::subscriber::fmt::MakeWriter;
use lambda_runtime::tracing::subscriber::layer::{Filter, Layer, SubscriberExt};
use lambda_runtime::tracing::subscriber::registry::LookupSpan;
use lambda_runtime::tracing::subscriber::util::SubscriberInitExt;
use lambda_runtime::tracing::{Level, Metadata, Subscriber};
use std::io::IsTerminal;
use std::str::FromStr;

/// The crates whose logs are ours: the library and the `ddb` binary. They never log message text
/// (`MessageText`'s `Debug` is redacted), so the cap leaves them alone.
const OURS: &[&str] = &["messaging_stream", "ddb"];

/// The most any other crate may log.
const FOREIGN_MAX: Level = Level::DEBUG;

fn is_ours(target: &str) -> bool {
    OURS.iter().any(|crate_name| {
        target
            .strip_prefix(crate_name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// The cap, on its own: our targets at any level, every other target at most DEBUG.
pub fn cap<S: Subscriber>() -> impl Filter<S> + Send + Sync + 'static {
    filter_fn(|meta: &Metadata<'_>| is_ours(meta.target()) || *meta.level() <= FOREIGN_MAX)
}

/// What a layer of [`layer`] lets through: (our targets at `settings.level`, or what `RUST_LOG`'s
/// directives allow with `settings.level` as their default) and [`cap`].
pub fn filter<S>(settings: &LogSettings) -> impl Filter<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let level = settings.level;
    let ours =
        filter_fn(move |meta: &Metadata<'_>| is_ours(meta.target()) && *meta.level() <= level)
            .with_max_level_hint(level);
    let directives = EnvFilter::builder()
        .with_default_directive(level.into())
        .parse_lossy(settings.directives.as_deref().unwrap_or_default());
    ours.or(directives).and(cap())
}

/// One formatting layer (text or JSON, as lambda_runtime formats them: no target, no time) into
/// `writer`, with [`filter`] as its own filter.
pub fn layer<S, W>(settings: &LogSettings, writer: W, ansi: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let format = lambda_runtime::tracing::subscriber::fmt::layer()
        .with_target(false)
        .without_time()
        .with_writer(writer);
    if settings.json {
        format.json().with_filter(filter(settings)).boxed()
    } else {
        format.with_ansi(ansi).with_filter(filter(settings)).boxed()
    }
}

/// How to log, from `AWS_LAMBDA_LOG_FORMAT`, `AWS_LAMBDA_LOG_LEVEL` and `RUST_LOG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub json: bool,
    /// Our targets' level, and the default of every other target.
    pub level: LevelFilter,
    /// `RUST_LOG` as given (not empty): per-target directives, or a plain level for everything.
    pub directives: Option<String>,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            json: false,
            level: LevelFilter::INFO,
            directives: None,
        }
    }
}

impl LogSettings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`. A value Lambda would not accept is an error that names
    /// the variable, the value and what is allowed; `RUST_LOG` (a Rust convention) gives the level
    /// only when `AWS_LAMBDA_LOG_LEVEL` is unset and it is a plain level, INFO otherwise.
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
        let directives = rust_log(&lookup);
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
            None => plain_level(directives.as_deref()).unwrap_or(LevelFilter::INFO),
        };
        Ok(Self {
            json,
            level,
            directives,
        })
    }

    /// The tools' settings (`ddb`): text, DEBUG with `verbose`, else `RUST_LOG`'s plain level or INFO.
    pub fn for_tool(verbose: bool, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let directives = rust_log(&lookup);
        let level = if verbose {
            LevelFilter::DEBUG
        } else {
            plain_level(directives.as_deref()).unwrap_or(LevelFilter::INFO)
        };
        Self {
            json: false,
            level,
            directives,
        }
    }
}

/// `RUST_LOG`, unless empty or blank.
fn rust_log(lookup: &impl Fn(&str) -> Option<String>) -> Option<String> {
    lookup("RUST_LOG").filter(|value| !value.trim().is_empty())
}

/// `directives` when it is one level for everything (`debug`, `3`), not a list of directives.
fn plain_level(directives: Option<&str>) -> Option<LevelFilter> {
    directives.and_then(|value| LevelFilter::from_str(value.trim()).ok())
}

/// Installs the Lambda's subscriber: [`layer`] on stdout (where Lambda's logs go), colours only
/// when stdout is a terminal. Call once, at start-up.
pub fn init_with(settings: LogSettings) {
    install(&settings, std::io::stdout, std::io::stdout().is_terminal())
}

/// [`init_with`] the environment's settings (INFO text if they are not valid).
pub fn init() {
    init_with(LogSettings::from_env().unwrap_or_default())
}

/// The tools' subscriber (`ddb`): [`LogSettings::for_tool`], text on stderr, colours only when
/// stderr is a terminal; capped as the Lambda is.
pub fn init_tool(verbose: bool) {
    let settings = LogSettings::for_tool(verbose, |name| std::env::var(name).ok());
    install(&settings, std::io::stderr, std::io::stderr().is_terminal())
}

/// The global subscriber: [`layer`] on `writer`, the one way both binaries install it.
fn install<W>(settings: &LogSettings, writer: W, ansi: bool)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    lambda_runtime::tracing::subscriber::registry()
        .with(layer(settings, writer, ansi))
        .init()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::tracing::subscriber::registry;
    use std::sync::{Arc, Mutex};

    /// A writer that keeps what the layer wrote.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    /// Emits one probe per (target, level) that matters through [`layer`] with `settings`, and
    /// returns the probes that got through, in order, and the lines written.
    fn through(settings: &LogSettings) -> (Vec<String>, String) {
        let buffer = Buffer::default();
        let subscriber = registry().with(layer(settings, buffer.clone(), false));
        tracing::subscriber::with_default(subscriber, || {
            use tracing::{event, Level};
            event!(target: "aws_smithy_runtime::client::orchestrator", Level::TRACE, "probe orchestrator-trace");
            event!(target: "aws_smithy_runtime::client::orchestrator", Level::DEBUG, "probe orchestrator-debug");
            event!(target: "aws_smithy_runtime::client", Level::TRACE, "probe client-trace");
            event!(target: "lambda_runtime::layers::api_response", Level::TRACE, "probe runtime-trace");
            event!(target: "lambda_runtime_api_client", Level::TRACE, "probe api-client-trace");
            event!(target: "hyper", Level::TRACE, "probe hyper-trace");
            event!(target: "hyper", Level::DEBUG, "probe hyper-debug");
            event!(target: "h2::codec", Level::TRACE, "probe h2-trace");
            event!(target: "rustls::conn", Level::TRACE, "probe rustls-trace");
            event!(target: "ddbx", Level::TRACE, "probe not-ddb-trace");
            event!(target: "messaging_stream::handler", Level::WARN, "probe own-warn");
            event!(target: "messaging_stream::handler", Level::INFO, "probe own-info");
            event!(target: "messaging_stream::handler", Level::DEBUG, "probe own-debug");
            event!(target: "messaging_stream::handler", Level::TRACE, "probe own-trace");
            event!(target: "ddb", Level::INFO, "probe ddb-info");
        });
        let written = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let probes = written
            .lines()
            .filter_map(|line| {
                let rest = &line[line.find("probe ")? + "probe ".len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                    .unwrap_or(rest.len());
                Some(rest[..end].to_owned())
            })
            .collect();
        (probes, written)
    }

    fn lambda(vars: &[(&str, &str)]) -> LogSettings {
        LogSettings::from_lookup(lookup(vars)).unwrap()
    }

    fn lookup<'a>(vars: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'a {
        |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn no_foreign_target_gets_past_debug_whatever_the_settings() {
        let own_default = ["own-warn", "own-info", "ddb-info"];
        // (the environment, the probes it lets through)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: &[Case] = &[
            (&[], &own_default),
            (
                &[("AWS_LAMBDA_LOG_LEVEL", "TRACE")],
                &[
                    "orchestrator-debug",
                    "hyper-debug",
                    "own-warn",
                    "own-info",
                    "own-debug",
                    "own-trace",
                    "ddb-info",
                ],
            ),
            (
                &[("RUST_LOG", "trace")],
                &[
                    "orchestrator-debug",
                    "hyper-debug",
                    "own-warn",
                    "own-info",
                    "own-debug",
                    "own-trace",
                    "ddb-info",
                ],
            ),
            // A directive on a sub-target raises that target to DEBUG, never past it, and leaves
            // our own lines at INFO.
            (
                &[("RUST_LOG", "aws_smithy_runtime::client::orchestrator=trace")],
                &["orchestrator-debug", "own-warn", "own-info", "ddb-info"],
            ),
            (
                &[
                    ("AWS_LAMBDA_LOG_LEVEL", "INFO"),
                    ("RUST_LOG", "aws_smithy_runtime::client=trace"),
                ],
                &["orchestrator-debug", "own-warn", "own-info", "ddb-info"],
            ),
            (
                &[("RUST_LOG", "hyper=trace")],
                &["hyper-debug", "own-warn", "own-info", "ddb-info"],
            ),
            (&[("RUST_LOG", "lambda_runtime=trace")], &own_default),
            (&[("RUST_LOG", "")], &own_default),
            (&[("RUST_LOG", "no such thing!")], &own_default),
            (&[("RUST_LOG", "messaging_stream=off")], &own_default),
            (&[("AWS_LAMBDA_LOG_LEVEL", "WARN")], &["own-warn"]),
            (&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")], &[]),
        ];
        for (vars, expected) in cases {
            for format in ["Text", "JSON"] {
                let mut vars = vars.to_vec();
                vars.push(("AWS_LAMBDA_LOG_FORMAT", format));
                let (probes, written) = through(&lambda(&vars));
                assert_eq!(probes, *expected, "{vars:?} let through:\n{written}");
                if format == "JSON" {
                    for line in written.lines() {
                        let line: serde_json::Value = serde_json::from_str(line).unwrap();
                        assert!(line["level"].is_string(), "{line}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_tools_are_capped_the_same() {
        let tool = |verbose, vars: &[(&str, &str)]| {
            through(&LogSettings::for_tool(verbose, lookup(vars))).0
        };
        assert_eq!(tool(false, &[]), ["own-warn", "own-info", "ddb-info"]);
        assert_eq!(
            tool(false, &[("RUST_LOG", "")]),
            ["own-warn", "own-info", "ddb-info"]
        );
        assert_eq!(
            tool(true, &[("RUST_LOG", "hyper=trace")]),
            [
                "hyper-debug",
                "own-warn",
                "own-info",
                "own-debug",
                "ddb-info"
            ]
        );
        assert_eq!(
            tool(
                false,
                &[(
                    "RUST_LOG",
                    "aws_smithy_runtime::client::orchestrator=trace,lambda_runtime=trace"
                )]
            ),
            ["orchestrator-debug", "own-warn", "own-info", "ddb-info"]
        );
        assert_eq!(
            tool(false, &[("RUST_LOG", "trace")]),
            [
                "orchestrator-debug",
                "hyper-debug",
                "own-warn",
                "own-info",
                "own-debug",
                "own-trace",
                "ddb-info",
            ]
        );
    }

    #[test]
    fn log_settings_take_what_lambda_takes() {
        let read = |vars: &[(&str, &str)]| LogSettings::from_lookup(lookup(vars));
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
        // An empty RUST_LOG is unset (tracing alone would read it as ERROR).
        assert_eq!(read(&[("RUST_LOG", "")]).unwrap(), LogSettings::default());
        assert_eq!(
            read(&[("RUST_LOG", "warn")]).unwrap().level,
            LevelFilter::WARN
        );
        assert_eq!(
            read(&[("RUST_LOG", "hyper=trace")]).unwrap().level,
            LevelFilter::INFO
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
