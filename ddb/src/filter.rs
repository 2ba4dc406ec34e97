//! Lambda event filtering as the deployed event source mapping does it, evaluated locally.
//!
//! This module owns one thing: reading the stream event's `FilterCriteria` out of `template.yaml` and deciding,
//! for a raw Lambda DynamoDB stream record (`serde_json::Value`), whether Lambda would pass it to the function.
//! The matching itself is done by the `quamina` crate (a port of the matcher behind EventBridge-style patterns);
//! this module only restricts the patterns to the operators Lambda's filtering accepts and quamina implements the
//! same way, so a pattern that would behave differently here and in AWS is rejected instead of silently diverging.
//!
//! Used by the deploy tests (the template's filter must agree with the code's relevance rule over `events/`) and
//! by the local stream trigger, so records that would never reach the deployed function do not reach it locally.
//!
//! It does not own the relevance rule (`messaging_stream::event`), the template's other settings, or CloudFormation
//! intrinsic functions: a pattern must be a plain string in the template, not built with `!Sub` or `!Join`.

use std::path::Path;

use crate::template::{Template, TemplateError};
use quamina::Quamina;
use serde_json::Value as Json;
use serde_norway::Value as Yaml;

/// Operators of Lambda event filtering that quamina implements with the same meaning.
/// (`wildcard`, `regexp`, `shellstyle`, `cidr` and `$or` are not accepted: Lambda's DynamoDB filtering does not
/// document them or quamina reads them differently.)
const SUPPORTED_OPERATORS: &[&str] = &[
    "prefix",
    "suffix",
    "exists",
    "anything-but",
    "equals-ignore-case",
    "numeric",
];

/// Why a template's filter could not be read or compiled.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The template could not be found or read (crate::template).
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("template has no AWS::Serverless::Function event of Type DynamoDB")]
    NoStreamEvent,
    #[error("template has several DynamoDB stream events ({0}); say which one to use")]
    SeveralStreamEvents(String),
    #[error("stream event {event} has no FilterCriteria.Filters: every record would invoke the function")]
    NoFilterCriteria { event: String },
    #[error("stream event {event}, filter {index}: Pattern must be a plain string (no intrinsic function)")]
    PatternNotString { event: String, index: usize },
    #[error("filter {index} is not valid JSON: {source}")]
    PatternJson {
        index: usize,
        source: serde_json::Error,
    },
    #[error("filter {index}: {reason}")]
    UnsupportedPattern { index: usize, reason: String },
    #[error("filter {index} rejected by the matcher: {source}")]
    Matcher {
        index: usize,
        source: quamina::QuaminaError,
    },
}

/// The compiled filter of one event source mapping: a record passes if any of its patterns matches.
pub struct EventFilter {
    event: String,
    patterns: Vec<String>,
    matcher: Quamina<usize>,
}

impl std::fmt::Debug for EventFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventFilter")
            .field("event", &self.event)
            .field("patterns", &self.patterns)
            .finish()
    }
}

impl EventFilter {
    /// Reads a SAM template and compiles the FilterCriteria of its single DynamoDB stream event.
    pub fn from_template(path: impl AsRef<Path>) -> Result<Self, FilterError> {
        Self::from_yaml(&Template::read(path.as_ref())?.yaml)
    }

    /// Same as [`EventFilter::from_template`], from the template's text.
    pub fn from_template_str(yaml: &str) -> Result<Self, FilterError> {
        Self::from_yaml(&Template::parse(Path::new(crate::template::FILE_NAME), yaml)?.yaml)
    }

    /// Same as [`EventFilter::from_template`], from a template already read.
    pub fn from_yaml(template: &Yaml) -> Result<Self, FilterError> {
        // Short-form intrinsics (!Sub, !GetAtt, !Ref...) come out of serde_norway as `Value::Tagged`; they are only
        // a problem where this module needs a plain value (the patterns), and are reported there.
        let (event, properties) = stream_event(template)?;
        let filters = properties
            .get("FilterCriteria")
            .and_then(|criteria| criteria.get("Filters"))
            .and_then(Yaml::as_sequence)
            .filter(|filters| !filters.is_empty())
            .ok_or_else(|| FilterError::NoFilterCriteria {
                event: event.clone(),
            })?;
        let patterns = filters
            .iter()
            .enumerate()
            .map(|(index, filter)| match filter.get("Pattern") {
                Some(Yaml::String(pattern)) => Ok(pattern.clone()),
                _ => Err(FilterError::PatternNotString {
                    event: event.clone(),
                    index,
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::compile(event, patterns)
    }

    /// Compiles filter patterns given directly (each one a Lambda `FilterCriteria.Filters[].Pattern` string).
    pub fn from_patterns<I, S>(patterns: I) -> Result<Self, FilterError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::compile(
            "(patterns)".to_owned(),
            patterns.into_iter().map(Into::into).collect(),
        )
    }

    fn compile(event: String, patterns: Vec<String>) -> Result<Self, FilterError> {
        let mut matcher = Quamina::new();
        for (index, pattern) in patterns.iter().enumerate() {
            let json: Json = serde_json::from_str(pattern)
                .map_err(|source| FilterError::PatternJson { index, source })?;
            check_pattern(&json, "")
                .map_err(|reason| FilterError::UnsupportedPattern { index, reason })?;
            matcher
                .add_pattern(index, pattern)
                .map_err(|source| FilterError::Matcher { index, source })?;
        }
        Ok(Self {
            event,
            patterns,
            matcher,
        })
    }

    /// Logical id of the function's event the filter came from (`"(patterns)"` for [`EventFilter::from_patterns`]).
    pub fn event(&self) -> &str {
        &self.event
    }

    /// The filter patterns, as written in the template.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether Lambda would deliver this raw stream record (one element of the event's `Records`) to the function.
    /// Anything that is not a JSON object never matches.
    pub fn matches(&self, record: &Json) -> bool {
        if !record.is_object() {
            return false;
        }
        // Serialising a `serde_json::Value` cannot fail, and quamina accepts any JSON object.
        let bytes = serde_json::to_vec(record).unwrap_or_default();
        self.matcher.has_matches(&bytes).unwrap_or(false)
    }
}

/// Finds the single `Type: DynamoDB` event among the template's `AWS::Serverless::Function` resources.
fn stream_event(template: &Yaml) -> Result<(String, &Yaml), FilterError> {
    let mut found = Vec::new();
    let resources = template
        .get("Resources")
        .and_then(Yaml::as_mapping)
        .into_iter()
        .flatten();
    for (function_id, resource) in resources {
        if resource.get("Type").and_then(Yaml::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let events = resource
            .get("Properties")
            .and_then(|p| p.get("Events"))
            .and_then(Yaml::as_mapping);
        for (event_id, event) in events.into_iter().flatten() {
            if event.get("Type").and_then(Yaml::as_str) == Some("DynamoDB") {
                let name = format!("{}.{}", yaml_key(function_id), yaml_key(event_id));
                found.push((name, event.get("Properties").unwrap_or(&Yaml::Null)));
            }
        }
    }
    match found.len() {
        0 => Err(FilterError::NoStreamEvent),
        1 => Ok(found.remove(0)),
        _ => Err(FilterError::SeveralStreamEvents(
            found
                .into_iter()
                .map(|(name, _)| name)
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

fn yaml_key(key: &Yaml) -> String {
    key.as_str()
        .map_or_else(|| format!("{key:?}"), str::to_owned)
}

/// Accepts a pattern only if every leaf is a list of plain values and single-operator objects this module allows.
fn check_pattern(pattern: &Json, path: &str) -> Result<(), String> {
    let Json::Object(fields) = pattern else {
        return Err(format!("{} must be a JSON object", display_path(path)));
    };
    if fields.is_empty() {
        return Err(format!("{} is an empty object", display_path(path)));
    }
    for (key, value) in fields {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        if key.starts_with('$') {
            return Err(format!("{here}: operator {key} is not supported here"));
        }
        match value {
            Json::Object(_) => check_pattern(value, &here)?,
            Json::Array(values) if values.is_empty() => {
                return Err(format!("{here}: empty list matches nothing"))
            }
            Json::Array(values) => values.iter().try_for_each(|v| check_value(v, &here))?,
            _ => {
                return Err(format!(
                    "{here}: a value to match must be in a list, e.g. [\"x\"]"
                ))
            }
        }
    }
    Ok(())
}

fn check_value(value: &Json, path: &str) -> Result<(), String> {
    match value {
        Json::Object(operator) => {
            let mut keys = operator.keys();
            match (keys.next(), keys.next()) {
                (Some(name), None) if SUPPORTED_OPERATORS.contains(&name.as_str()) => Ok(()),
                (Some(name), None) => {
                    Err(format!("{path}: operator {name:?} is not supported here"))
                }
                _ => Err(format!(
                    "{path}: an operator object must have exactly one key"
                )),
            }
        }
        Json::Array(_) => Err(format!("{path}: nested lists are not a pattern")),
        _ => Ok(()),
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "the pattern"
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PATTERN: &str = r#"{"eventName":["INSERT","MODIFY"],"dynamodb":{"Keys":{"pk":{"S":[{"prefix":"MSG#"}]}},"NewImage":{"message":{"S":[{"exists":true}]}}}}"#;

    fn record(event_name: &str, pk: &str, new_image: Json) -> Json {
        json!({
            "eventID": "1",
            "eventName": event_name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1_700_000_000,
                "Keys": {"pk": {"S": pk}, "sk": {"S": "2026-01-01T00:00:00.000000+00:00"}},
                "NewImage": new_image,
                "SequenceNumber": "100",
                "SizeBytes": 10,
                "StreamViewType": "NEW_IMAGE"
            },
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-01-01T00:00:00.000"
        })
    }

    fn message_image() -> Json {
        json!({"pk": {"S": "MSG#g1"}, "message": {"S": "hi"}, "message_group_uuid": {"S": "g1"}})
    }

    fn filter() -> EventFilter {
        EventFilter::from_patterns([PATTERN]).expect("pattern compiles")
    }

    #[test]
    fn passes_new_and_changed_messages() {
        let f = filter();
        assert!(f.matches(&record("INSERT", "MSG#g1", message_image())));
        assert!(f.matches(&record("MODIFY", "MSG#g1", message_image())));
    }

    #[test]
    fn exact_list_rejects_other_event_names_and_is_case_sensitive() {
        let f = filter();
        assert!(!f.matches(&record("REMOVE", "MSG#g1", message_image())));
        assert!(!f.matches(&record("insert", "MSG#g1", message_image())));
    }

    #[test]
    fn prefix_is_anchored_and_case_sensitive() {
        let f = filter();
        assert!(!f.matches(&record("INSERT", "GRP#owner", message_image())));
        assert!(!f.matches(&record("INSERT", "msg#g1", message_image())));
        assert!(!f.matches(&record("INSERT", "XMSG#g1", message_image())));
        // The prefix alone is a match: Lambda's prefix has no minimum length beyond the prefix itself.
        assert!(f.matches(&record("INSERT", "MSG#", message_image())));
    }

    #[test]
    fn prefix_only_matches_strings() {
        let f = filter();
        let mut r = record("INSERT", "MSG#g1", message_image());
        r["dynamodb"]["Keys"]["pk"] = json!({"N": "1"});
        assert!(!f.matches(&r));
    }

    #[test]
    fn exists_needs_the_leaf() {
        let f = filter();
        assert!(!f.matches(&record("INSERT", "MSG#g1", json!({"pk": {"S": "MSG#g1"}}))));
        // A message attribute of another type is not `message.S`.
        assert!(!f.matches(&record("INSERT", "MSG#g1", json!({"message": {"N": "1"}}))));
        // An empty string still exists.
        assert!(f.matches(&record("INSERT", "MSG#g1", json!({"message": {"S": ""}}))));
        // No NewImage at all (e.g. a KEYS_ONLY stream): nothing to match.
        let mut r = record("INSERT", "MSG#g1", json!(null));
        r["dynamodb"].as_object_mut().unwrap().remove("NewImage");
        assert!(!f.matches(&r));
    }

    #[test]
    fn exists_on_null_and_non_leaf_values() {
        // Documented so that the code's rule can be compared: quamina (like EventBridge) treats a JSON null as a
        // present leaf, and an object as not a leaf. DynamoDB never writes either shape for `message.S`.
        let f = filter();
        assert!(f.matches(&record("INSERT", "MSG#g1", json!({"message": {"S": null}}))));
        assert!(!f.matches(&record(
            "INSERT",
            "MSG#g1",
            json!({"message": {"S": {"x": "y"}}})
        )));
    }

    #[test]
    fn several_filters_are_alternatives() {
        let f = EventFilter::from_patterns([
            r#"{"eventName":["REMOVE"]}"#,
            r#"{"eventName":["INSERT"]}"#,
        ])
        .unwrap();
        assert!(f.matches(&json!({"eventName": "REMOVE"})));
        assert!(f.matches(&json!({"eventName": "INSERT"})));
        assert!(!f.matches(&json!({"eventName": "MODIFY"})));
    }

    #[test]
    fn anything_but_and_exists_false() {
        let f = EventFilter::from_patterns([
            r#"{"eventName":[{"anything-but":["REMOVE"]}],"x":[{"exists":false}]}"#,
        ])
        .unwrap();
        assert!(f.matches(&json!({"eventName": "INSERT"})));
        assert!(!f.matches(&json!({"eventName": "REMOVE"})));
        assert!(!f.matches(&json!({"eventName": "INSERT", "x": 1})));
    }

    #[test]
    fn filter_can_be_shared_across_tasks() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<EventFilter>();
    }

    #[test]
    fn non_objects_never_match() {
        let f = filter();
        assert!(!f.matches(&json!([1, 2])));
        assert!(!f.matches(&json!("INSERT")));
        assert!(!f.matches(&Json::Null));
    }

    #[test]
    fn rejects_patterns_that_would_diverge_from_lambda() {
        for (pattern, needle) in [
            (r#"{"pk":[{"wildcard":"MSG#*"}]}"#, "wildcard"),
            (
                r#"{"pk":[{"prefix":"MSG#","suffix":"x"}]}"#,
                "exactly one key",
            ),
            (r#"{"$or":[{"a":["b"]},{"c":["d"]}]}"#, "$or"),
            (r#"{"eventName":"INSERT"}"#, "in a list"),
            (r#"{"eventName":[]}"#, "empty list"),
            (r#"{}"#, "empty object"),
            (r#"["INSERT"]"#, "JSON object"),
        ] {
            let err = EventFilter::from_patterns([pattern]).unwrap_err();
            assert!(
                matches!(err, FilterError::UnsupportedPattern { index: 0, .. }),
                "{pattern}: {err}"
            );
            assert!(err.to_string().contains(needle), "{pattern}: {err}");
        }
        assert!(matches!(
            EventFilter::from_patterns(["{not json"]).unwrap_err(),
            FilterError::PatternJson { .. }
        ));
        assert!(matches!(
            EventFilter::from_patterns([r#"{"a":[{"exists":"yes"}]}"#]).unwrap_err(),
            FilterError::Matcher { .. }
        ));
    }

    const TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  Table:
    Type: AWS::DynamoDB::Table
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Role: !GetAtt Role.Arn
      Environment:
        Variables:
          TABLE: !Sub "${AWS::StackName}-t"
      Events:
        Stream:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Table.StreamArn
            FilterCriteria:
              Filters:
                - Pattern: 'PATTERN'
"#;

    #[test]
    fn reads_the_filter_from_a_template_with_short_form_tags() {
        let f = EventFilter::from_template_str(&TEMPLATE.replace("PATTERN", PATTERN)).unwrap();
        assert_eq!(f.event(), "Fn.Stream");
        assert_eq!(f.patterns(), [PATTERN]);
        assert!(f.matches(&record("INSERT", "MSG#g1", message_image())));
        assert!(!f.matches(&record("INSERT", "GRP#o", message_image())));
    }

    #[test]
    fn template_errors_are_specific() {
        let no_filter = TEMPLATE.replace("            FilterCriteria:\n              Filters:\n                - Pattern: 'PATTERN'\n", "");
        assert!(matches!(
            EventFilter::from_template_str(&no_filter).unwrap_err(),
            FilterError::NoFilterCriteria { event } if event == "Fn.Stream"
        ));
        let subbed = TEMPLATE.replace("'PATTERN'", "!Sub '{\"a\":[\"${X}\"]}'");
        assert!(matches!(
            EventFilter::from_template_str(&subbed).unwrap_err(),
            FilterError::PatternNotString { .. }
        ));
        let no_event = TEMPLATE.replace("Type: DynamoDB", "Type: SQS");
        assert!(matches!(
            EventFilter::from_template_str(&no_event).unwrap_err(),
            FilterError::NoStreamEvent
        ));
        let two = format!(
            "{}\n  Fn2:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n        S2:\n          Type: DynamoDB\n",
            TEMPLATE.replace("PATTERN", PATTERN)
        );
        assert!(matches!(
            EventFilter::from_template_str(&two).unwrap_err(),
            FilterError::SeveralStreamEvents(_)
        ));
        assert!(matches!(
            EventFilter::from_template_str("a: [").unwrap_err(),
            FilterError::Template(TemplateError::Yaml { .. })
        ));
        assert!(matches!(
            EventFilter::from_template("/nonexistent/template.yaml").unwrap_err(),
            FilterError::Template(TemplateError::Read { .. })
        ));
    }
}
