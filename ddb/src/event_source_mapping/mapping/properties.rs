//! Finding a template's stream mappings and reading one's properties: SAM functions' `Events:
//! Type: DynamoDB` and plain `AWS::Lambda::EventSourceMapping`s of a table's stream, the intrinsics
//! a setting may use (`!Ref` to a parameter's Default; `!GetAtt`/`!Sub` only where no value is
//! needed), and each property read into a [`Setting`] or rejected with a [`MappingError`] naming
//! the mapping, the setting and what Lambda allows. The settings' type and Lambda's limits are the
//! parent's.

use super::{MappingError, Setting, Settings, Source, Start};
use serde_norway::Value as Yaml;
use std::path::Path;

pub(super) struct Candidate<'a> {
    /// `Function.Event` or the mapping's id.
    pub(super) name: String,
    /// The event's or the mapping's own logical id.
    pub(super) id: String,
    /// The function's logical id.
    pub(super) function: String,
    pub(super) properties: &'a Yaml,
}

fn key(value: &Yaml) -> String {
    value
        .as_str()
        .map_or_else(|| format!("{value:?}"), str::to_owned)
}

/// A tagged or long-form intrinsic's name and argument: `!GetAtt X.Arn`, `{"Fn::GetAtt": [X, Arn]}`.
fn intrinsic(value: &Yaml) -> Option<(String, &Yaml)> {
    match value {
        Yaml::Tagged(tagged) => Some((
            tagged.tag.to_string().trim_start_matches('!').to_owned(),
            &tagged.value,
        )),
        Yaml::Mapping(map) if map.len() == 1 => {
            let (name, argument) = map.iter().next()?;
            let name = name.as_str()?;
            let short = name.strip_prefix("Fn::").unwrap_or(name);
            (name.starts_with("Fn::") || name == "Ref").then(|| (short.to_owned(), argument))
        }
        _ => None,
    }
}

/// The logical id a `FunctionName` (or `EventSourceArn`) refers to, with the attribute if any.
fn reference(value: &Yaml) -> Option<(String, Option<String>)> {
    match intrinsic(value) {
        Some((name, argument)) if name == "Ref" => Some((argument.as_str()?.to_owned(), None)),
        Some((name, argument)) if name == "GetAtt" => match argument {
            Yaml::String(text) => {
                let (id, attribute) = text.split_once('.')?;
                Some((id.to_owned(), Some(attribute.to_owned())))
            }
            Yaml::Sequence(parts) if parts.len() == 2 => Some((
                parts[0].as_str()?.to_owned(),
                Some(parts[1].as_str()?.to_owned()),
            )),
            _ => None,
        },
        _ => None,
    }
}

pub(super) fn mappings(template: &Yaml) -> Vec<Candidate<'_>> {
    let mut found = Vec::new();
    let resources = template
        .get("Resources")
        .and_then(Yaml::as_mapping)
        .into_iter()
        .flatten();
    for (id, resource) in resources {
        let id = key(id);
        let properties = resource.get("Properties");
        match resource.get("Type").and_then(Yaml::as_str) {
            Some("AWS::Serverless::Function") => {
                let events = properties
                    .and_then(|p| p.get("Events"))
                    .and_then(Yaml::as_mapping);
                for (event_id, event) in events.into_iter().flatten() {
                    if event.get("Type").and_then(Yaml::as_str) == Some("DynamoDB") {
                        let event_id = key(event_id);
                        found.push(Candidate {
                            name: format!("{id}.{event_id}"),
                            id: event_id,
                            function: id.clone(),
                            properties: event.get("Properties").unwrap_or(&Yaml::Null),
                        });
                    }
                }
            }
            Some("AWS::Lambda::EventSourceMapping") => {
                let Some(properties) = properties else {
                    continue;
                };
                let source = properties.get("EventSourceArn");
                let is_stream = source.is_some_and(|arn| {
                    reference(arn)
                        .is_some_and(|(_, attribute)| attribute.as_deref() == Some("StreamArn"))
                        || arn
                            .as_str()
                            .is_some_and(|a| a.contains(":dynamodb:") && a.contains("/stream/"))
                });
                if !is_stream {
                    continue;
                }
                let function = properties
                    .get("FunctionName")
                    .and_then(|f| {
                        reference(f)
                            .map(|(id, _)| id)
                            .or_else(|| f.as_str().map(str::to_owned))
                    })
                    .unwrap_or_else(|| "(unknown function)".to_owned());
                found.push(Candidate {
                    name: id.clone(),
                    id,
                    function,
                    properties,
                });
            }
            _ => {}
        }
    }
    found
}

/// A setting's value: plain, or `!Ref` to a parameter's Default.
fn resolve<'a>(template: &'a Yaml, value: &'a Yaml) -> Option<&'a Yaml> {
    match reference(value) {
        Some((parameter, None)) => template
            .get("Parameters")?
            .get(parameter.as_str())?
            .get("Default"),
        Some(_) => None,
        None => Some(value),
    }
}

fn template_setting<T>(value: T) -> Setting<T> {
    Setting {
        value,
        source: Source::Template,
    }
}

pub(super) fn settings(
    template: &Yaml,
    candidate: &Candidate<'_>,
    path: &Path,
) -> Result<Settings, MappingError> {
    let read = Properties {
        template,
        candidate,
    };
    let mut settings = Settings {
        mapping: Some(candidate.name.clone()),
        template: Some(path.to_owned()),
        ..Settings::default()
    };
    if let Some(n) = read.whole("BatchSize", "a whole number")? {
        settings.batch_size = template_setting(n);
    }
    if let Some(start) = read.starting_position()? {
        settings.starting_position = template_setting(start);
    }
    if let Some(n) = read.whole("MaximumRetryAttempts", "a whole number")? {
        settings.maximum_retry_attempts = template_setting(n);
    }
    if let Some(bisect) = read.bisect()? {
        settings.bisect_batch_on_function_error = template_setting(bisect);
    }
    if let Some(n) = read.whole("MaximumRecordAgeInSeconds", "a whole number")? {
        settings.maximum_record_age_seconds = template_setting(n);
    }
    if let Some(n) = read.whole(
        "MaximumBatchingWindowInSeconds",
        "a whole number of seconds",
    )? {
        settings.maximum_batching_window_seconds = template_setting(n);
    }
    if let Some(n) = read.whole("ParallelizationFactor", "a whole number")? {
        settings.parallelization_factor = template_setting(n);
    }
    if let Some(patterns) = read.filters()? {
        settings.filters = template_setting(patterns);
    }
    if let Some(n) = read.timeout()? {
        settings.timeout_seconds = template_setting(n);
    }
    settings.validate()?;
    Ok(settings)
}

/// A candidate mapping's properties, each read as Lambda reads it (a `!Ref` to a parameter is
/// its Default) or rejected with an error that names the mapping, the setting and what is allowed.
struct Properties<'a> {
    template: &'a Yaml,
    candidate: &'a Candidate<'a>,
}

impl<'a> Properties<'a> {
    fn invalid(&self, setting: &'static str, value: &Yaml, allowed: &'static str) -> MappingError {
        MappingError::Invalid {
            mapping: self.candidate.name.clone(),
            setting,
            value: serde_norway::to_string(value)
                .map_or_else(|_| format!("{value:?}"), |s| s.trim().to_owned()),
            allowed,
        }
    }

    /// `raw`, the value of `setting`, with a parameter reference resolved.
    fn resolved(&self, setting: &'static str, raw: &'a Yaml) -> Result<&'a Yaml, MappingError> {
        resolve(self.template, raw).ok_or_else(|| {
            self.invalid(
                setting,
                raw,
                "a value, or !Ref to a parameter with a Default",
            )
        })
    }

    /// The property `name`'s value, if the mapping sets it.
    fn get(&self, name: &'static str) -> Result<Option<&'a Yaml>, MappingError> {
        let properties: &'a Yaml = self.candidate.properties;
        properties
            .get(name)
            .map(|raw| self.resolved(name, raw))
            .transpose()
    }

    /// `value` as a whole number of type `T`.
    fn number<T: TryFrom<i64>>(
        &self,
        setting: &'static str,
        value: &Yaml,
        allowed: &'static str,
    ) -> Result<T, MappingError> {
        // Numbers may be written as strings in a template ("100"), as CloudFormation accepts.
        value
            .as_i64()
            .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| self.invalid(setting, value, allowed))
    }

    /// The whole-number property `name`, if set.
    fn whole<T: TryFrom<i64>>(
        &self,
        name: &'static str,
        allowed: &'static str,
    ) -> Result<Option<T>, MappingError> {
        self.get(name)?
            .map(|value| self.number(name, value, allowed))
            .transpose()
    }

    fn starting_position(&self) -> Result<Option<Start>, MappingError> {
        let Some(value) = self.get("StartingPosition")? else {
            return Ok(None);
        };
        match value.as_str() {
            Some("TRIM_HORIZON") => Ok(Some(Start::TrimHorizon)),
            Some("LATEST") => Ok(Some(Start::Latest)),
            _ => Err(self.invalid(
                "StartingPosition",
                value,
                "TRIM_HORIZON or LATEST for a DynamoDB stream",
            )),
        }
    }

    fn bisect(&self) -> Result<Option<bool>, MappingError> {
        let Some(value) = self.get("BisectBatchOnFunctionError")? else {
            return Ok(None);
        };
        value
            .as_bool()
            .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
            .map(Some)
            .ok_or_else(|| self.invalid("BisectBatchOnFunctionError", value, "true or false"))
    }

    /// The FilterCriteria's patterns, if any.
    fn filters(&self) -> Result<Option<Vec<String>>, MappingError> {
        let Some(filters) = self.candidate.properties.get("FilterCriteria") else {
            return Ok(None);
        };
        let list = filters
            .get("Filters")
            .and_then(Yaml::as_sequence)
            .ok_or_else(|| {
                self.invalid(
                    "FilterCriteria",
                    filters,
                    "Filters: a list of {Pattern: JSON text}",
                )
            })?;
        list.iter()
            .map(|filter| match filter.get("Pattern") {
                Some(Yaml::String(pattern)) => Ok(pattern.clone()),
                _ => Err(self.invalid(
                    "FilterCriteria",
                    filter,
                    "each filter's Pattern must be a plain string (no intrinsic function)",
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// The function's own Timeout, else (a SAM function) the template's Globals.Function.Timeout.
    fn timeout(&self) -> Result<Option<u32>, MappingError> {
        let template = self.template;
        let function = template
            .get("Resources")
            .and_then(|r| r.get(self.candidate.function.as_str()));
        let sam = function.and_then(|f| f.get("Type")).and_then(Yaml::as_str)
            == Some("AWS::Serverless::Function");
        let timeout = function
            .and_then(|f| f.get("Properties")?.get("Timeout"))
            .or_else(|| {
                sam.then(|| template.get("Globals")?.get("Function")?.get("Timeout"))
                    .flatten()
            });
        let Some(raw) = timeout else {
            return Ok(None);
        };
        let value = self.resolved("Timeout", raw)?;
        self.number("Timeout", value, "a whole number of seconds")
            .map(Some)
    }
}
