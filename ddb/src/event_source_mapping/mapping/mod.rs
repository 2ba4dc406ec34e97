//! The event source mapping of a template, as `ddb watch` follows it: the function's DynamoDB
//! stream event (SAM `Events: Type: DynamoDB`) or a plain `AWS::Lambda::EventSourceMapping`, its
//! settings (BatchSize, StartingPosition, MaximumRetryAttempts, BisectBatchOnFunctionError,
//! MaximumRecordAgeInSeconds, MaximumBatchingWindowInSeconds, ParallelizationFactor) and its
//! FilterCriteria, each checked against what Lambda accepts; and the function's own `Timeout` (or
//! SAM's `Globals.Function.Timeout`), which bounds each invocation.
//!
//! `!Ref` to a template parameter reads the parameter's `Default`; other intrinsics (`!GetAtt`,
//! `!Sub`) are only accepted where no value is needed (the stream's ARN). A setting the template
//! leaves out takes Lambda's default, and says so. The template is found and read by
//! `crate::template`. This module owns the settings (their sources, Lambda's limits, the line that
//! describes them) and choosing the mapping; finding the mappings in the template and reading
//! their properties is `properties`'s.

mod properties;

use crate::template::{Template, TemplateError};
use properties::{mappings, settings, Candidate};
use std::fmt;
use std::path::{Path, PathBuf};

/// Why the template's mapping could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{path} has no DynamoDB stream event (a function's Events: Type: DynamoDB, or an AWS::Lambda::EventSourceMapping of a table's stream)")]
    None { path: PathBuf },
    #[error("{path} has several stream mappings ({found}): say which with --function LOGICAL_ID")]
    Several { path: PathBuf, found: String },
    #[error("{path} has no stream mapping for --function {function} (there are: {found})")]
    NotFound {
        path: PathBuf,
        function: String,
        found: String,
    },
    #[error("{mapping}: {setting} {value}: {allowed}")]
    Invalid {
        mapping: String,
        setting: &'static str,
        value: String,
        allowed: &'static str,
    },
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Template,
    Flag,
    /// Lambda's default (the template leaves it out, or there is no template).
    Default,
}

/// One setting and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Setting<T> {
    fn default(value: T) -> Self {
        Self {
            value,
            source: Source::Default,
        }
    }

    /// A flag, when given, overrides the setting.
    pub fn override_with(&mut self, flag: Option<T>) {
        if let Some(value) = flag {
            *self = Self {
                value,
                source: Source::Flag,
            };
        }
    }
}

/// StartingPosition of a DynamoDB stream mapping: the template's setting and where `ddb watch`
/// starts reading the shards that are open when it first looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The oldest record still in the stream.
    TrimHorizon,
    /// Only records written from now on.
    Latest,
}

/// The settings of one mapping, Lambda's defaults where the template is silent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `Function.Event` (SAM) or the mapping's logical id; `None` without a template.
    pub mapping: Option<String>,
    /// The template it came from.
    pub template: Option<PathBuf>,
    pub batch_size: Setting<u32>,
    pub starting_position: Setting<Start>,
    /// -1: for ever.
    pub maximum_retry_attempts: Setting<i64>,
    pub bisect_batch_on_function_error: Setting<bool>,
    /// -1: for ever.
    pub maximum_record_age_seconds: Setting<i64>,
    pub maximum_batching_window_seconds: Setting<u32>,
    pub parallelization_factor: Setting<u32>,
    /// FilterCriteria.Filters[].Pattern; empty: every record.
    pub filters: Setting<Vec<String>>,
    /// The function's Timeout, in seconds: an invocation still running after it has failed.
    pub timeout_seconds: Setting<u32>,
}

impl Default for Settings {
    /// Lambda's defaults for a DynamoDB stream mapping (StartingPosition has none; TRIM_HORIZON here).
    fn default() -> Self {
        Self {
            mapping: None,
            template: None,
            batch_size: Setting::default(100),
            starting_position: Setting::default(Start::TrimHorizon),
            maximum_retry_attempts: Setting::default(-1),
            bisect_batch_on_function_error: Setting::default(false),
            maximum_record_age_seconds: Setting::default(-1),
            maximum_batching_window_seconds: Setting::default(0),
            parallelization_factor: Setting::default(1),
            filters: Setting::default(Vec::new()),
            timeout_seconds: Setting::default(3),
        }
    }
}

impl Settings {
    /// Checks every value against Lambda's limits for a DynamoDB stream mapping.
    pub fn validate(&self) -> Result<(), MappingError> {
        let mapping = self.mapping.clone().unwrap_or_else(|| "flags".to_owned());
        let invalid = |setting, value: String, allowed| MappingError::Invalid {
            mapping: mapping.clone(),
            setting,
            value,
            allowed,
        };
        if !(1..=10_000).contains(&self.batch_size.value) {
            return Err(invalid(
                "BatchSize",
                self.batch_size.value.to_string(),
                "Lambda takes 1 to 10000 for a DynamoDB stream",
            ));
        }
        let retries = self.maximum_retry_attempts.value;
        if !(-1..=10_000).contains(&retries) {
            return Err(invalid(
                "MaximumRetryAttempts",
                retries.to_string(),
                "Lambda takes -1 (for ever) to 10000",
            ));
        }
        let age = self.maximum_record_age_seconds.value;
        if age != -1 && !(60..=604_800).contains(&age) {
            return Err(invalid(
                "MaximumRecordAgeInSeconds",
                age.to_string(),
                "Lambda takes -1 (for ever) or 60 to 604800",
            ));
        }
        if self.maximum_batching_window_seconds.value > 300 {
            return Err(invalid(
                "MaximumBatchingWindowInSeconds",
                self.maximum_batching_window_seconds.value.to_string(),
                "Lambda takes 0 to 300",
            ));
        }
        if !(1..=10).contains(&self.parallelization_factor.value) {
            return Err(invalid(
                "ParallelizationFactor",
                self.parallelization_factor.value.to_string(),
                "Lambda takes 1 to 10",
            ));
        }
        if !(1..=900).contains(&self.timeout_seconds.value) {
            return Err(invalid(
                "Timeout",
                self.timeout_seconds.value.to_string(),
                "Lambda takes 1 to 900 seconds",
            ));
        }
        if self.filters.value.len() > 5 {
            return Err(invalid(
                "FilterCriteria",
                format!("{} filters", self.filters.value.len()),
                "Lambda takes at most 5 filters per mapping",
            ));
        }
        Ok(())
    }

    /// One line: every setting in force and where it came from.
    pub fn describe(&self) -> String {
        fn from<T>(setting: &Setting<T>) -> &'static str {
            match setting.source {
                Source::Template => "template",
                Source::Flag => "flag",
                Source::Default => "Lambda's default",
            }
        }
        let start = match self.starting_position.value {
            Start::TrimHorizon => "TRIM_HORIZON",
            Start::Latest => "LATEST",
        };
        let filters = match self.filters.value.len() {
            0 => "none".to_owned(),
            n => format!("{n} patterns"),
        };
        let origin = match (&self.mapping, &self.template) {
            (Some(mapping), Some(template)) => format!("{mapping} of {}", template.display()),
            _ => "no template".to_owned(),
        };
        format!(
            "{origin}: BatchSize {} ({}), StartingPosition {start} ({}), MaximumRetryAttempts {} ({}), \
             BisectBatchOnFunctionError {} ({}), MaximumRecordAgeInSeconds {} ({}), \
             MaximumBatchingWindowInSeconds {} ({}), ParallelizationFactor {} ({}), FilterCriteria {filters} ({}), \
             the function's Timeout {} s ({})",
            self.batch_size.value,
            from(&self.batch_size),
            from(&self.starting_position),
            self.maximum_retry_attempts.value,
            from(&self.maximum_retry_attempts),
            self.bisect_batch_on_function_error.value,
            from(&self.bisect_batch_on_function_error),
            self.maximum_record_age_seconds.value,
            from(&self.maximum_record_age_seconds),
            self.maximum_batching_window_seconds.value,
            from(&self.maximum_batching_window_seconds),
            self.parallelization_factor.value,
            from(&self.parallelization_factor),
            from(&self.filters),
            self.timeout_seconds.value,
            from(&self.timeout_seconds),
        )
    }
}

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Reads the stream mapping of `function` (a function's logical id, or `Function.Event`, or a
/// mapping's logical id) from the template at `path`; with `None`, the template's only one.
pub fn read(path: &Path, function: Option<&str>) -> Result<Settings, MappingError> {
    from_template(&Template::read(path)?, function)
}

/// [`read`], from a template already read.
pub fn from_template(
    template: &Template,
    function: Option<&str>,
) -> Result<Settings, MappingError> {
    let path = template.path.as_path();
    let template = &template.yaml;
    let candidates = mappings(template);
    let names = || {
        candidates
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen: Vec<&Candidate> = match function {
        None => candidates.iter().collect(),
        Some(wanted) => candidates
            .iter()
            .filter(|c| c.function == wanted || c.name == wanted || c.id == wanted)
            .collect(),
    };
    let candidate = match (chosen.as_slice(), function) {
        ([one], _) => *one,
        ([], None) => {
            return Err(MappingError::None {
                path: path.to_owned(),
            })
        }
        ([], Some(wanted)) => {
            return Err(MappingError::NotFound {
                path: path.to_owned(),
                function: wanted.to_owned(),
                found: names(),
            })
        }
        (several, _) => {
            return Err(MappingError::Several {
                path: path.to_owned(),
                found: several
                    .iter()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    };
    settings(template, candidate, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("template.yaml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_the_projects_template() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let settings = read(&path, None).unwrap();
        assert_eq!(
            settings.mapping.as_deref(),
            Some("MessagingStreamFunction.TableStream")
        );
        assert_eq!(
            settings.batch_size,
            Setting {
                value: 100,
                source: Source::Template
            },
            "!Ref BatchSize reads its Default"
        );
        assert_eq!(settings.starting_position.value, Start::TrimHorizon);
        assert_eq!(settings.maximum_retry_attempts.value, 5);
        assert!(settings.bisect_batch_on_function_error.value);
        assert_eq!(settings.maximum_record_age_seconds.value, 3600);
        assert_eq!(settings.maximum_batching_window_seconds.value, 1);
        assert_eq!(settings.parallelization_factor.value, 1);
        assert_eq!(settings.filters.value.len(), 2);
        assert_eq!(
            settings.timeout_seconds,
            Setting {
                value: 90,
                source: Source::Template
            },
            "the function's Timeout"
        );
        assert!(
            settings.describe().contains("BatchSize 100 (template)")
                && settings
                    .describe()
                    .contains("the function's Timeout 90 s (template)"),
            "{settings}"
        );
    }

    const TWO: &str = r#"
Parameters:
  Size: {Type: Number, Default: 7}
Globals:
  Function: {Timeout: 30}
Resources:
  Table: {Type: AWS::DynamoDB::Table}
  First:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        S:
          Type: DynamoDB
          Properties: {Stream: !GetAtt Table.StreamArn, StartingPosition: LATEST, BatchSize: !Ref Size}
  Second: {Type: AWS::Lambda::Function, Properties: {Timeout: 12}}
  SecondMapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: !GetAtt Second.Arn
      EventSourceArn: !GetAtt Table.StreamArn
      StartingPosition: TRIM_HORIZON
      BatchSize: 3
      MaximumRetryAttempts: 2
      BisectBatchOnFunctionError: true
      ParallelizationFactor: 3
  Queue:
    Type: AWS::Lambda::EventSourceMapping
    Properties: {FunctionName: !Ref Second, EventSourceArn: !GetAtt SomeQueue.Arn}
"#;

    #[test]
    fn several_functions_need_a_name_and_plain_mappings_count() {
        let (_dir, path) = write(TWO);
        let error = read(&path, None).unwrap_err().to_string();
        assert!(
            error.contains("First.S, SecondMapping") && error.contains("--function"),
            "{error}"
        );
        let first = read(&path, Some("First")).unwrap();
        assert_eq!(
            (first.batch_size.value, first.starting_position.value),
            (7, Start::Latest)
        );
        assert_eq!(first.maximum_retry_attempts.source, Source::Default);
        assert_eq!(first.timeout_seconds.value, 30, "SAM's Globals");
        let second = read(&path, Some("Second")).unwrap();
        assert_eq!(second.mapping.as_deref(), Some("SecondMapping"));
        assert_eq!(
            (
                second.batch_size.value,
                second.maximum_retry_attempts.value,
                second.bisect_batch_on_function_error.value,
                second.parallelization_factor.value
            ),
            (3, 2, true, 3)
        );
        assert_eq!(second.timeout_seconds.value, 12, "the plain function's own");
        assert!(read(&path, Some("Nobody"))
            .unwrap_err()
            .to_string()
            .contains("there are: First.S, SecondMapping"));
    }

    #[test]
    fn values_lambda_rejects_are_rejected() {
        for (setting, value) in [
            ("BatchSize", "0"),
            ("BatchSize", "10001"),
            ("MaximumRecordAgeInSeconds", "30"),
            ("ParallelizationFactor", "11"),
            ("MaximumBatchingWindowInSeconds", "301"),
            ("MaximumRetryAttempts", "-2"),
            ("StartingPosition", "AT_TIMESTAMP"),
        ] {
            let (_dir, path) = write(&format!(
                "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n        E:\n          Type: DynamoDB\n          Properties:\n            {setting}: {value}\n"
            ));
            let error = read(&path, None).unwrap_err().to_string();
            assert!(error.contains(setting), "{setting} {value}: {error}");
        }
        let (_dir, path) = write("Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Timeout: 901\n      Events:\n        E: {Type: DynamoDB}\n");
        let error = read(&path, None).unwrap_err().to_string();
        assert!(error.contains("Timeout 901"), "{error}");
        let (_dir, path) = write("Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n        E: {Type: DynamoDB}\n");
        let settings = read(&path, None).unwrap();
        assert_eq!(
            (
                settings.timeout_seconds.value,
                settings.timeout_seconds.source
            ),
            (3, Source::Default),
            "Lambda's default"
        );
    }
}
