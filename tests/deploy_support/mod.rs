//! Helpers shared by the `tests/deploy_*.rs` tests: the crate's paths, template.yaml as YAML, policies/*.json.
//! Each test crate uses a different subset of them.
#![allow(dead_code)]

use serde_json::Value as Json;
use serde_norway::Value as Yaml;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The crate's directory. Read at run time first (cargo test sets it for the test process): a test binary built
/// from another checkout sharing this target/ (a git worktree, say) would otherwise look at that checkout.
pub fn crate_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
    })
}

pub fn template_path() -> PathBuf {
    crate_dir().join("template.yaml")
}

pub fn template_text() -> String {
    std::fs::read_to_string(template_path()).expect("read template.yaml")
}

pub fn template() -> Yaml {
    serde_norway::from_str(&template_text()).expect("template.yaml is YAML")
}

/// `Resources.<id>` of the template.
pub fn resource<'a>(template: &'a Yaml, id: &str) -> &'a Yaml {
    template
        .get("Resources")
        .and_then(|r| r.get(id))
        .unwrap_or_else(|| panic!("template.yaml has no resource {id}"))
}

/// Follows a path of mapping keys; panics with the path when a key is missing.
pub fn at<'a>(value: &'a Yaml, path: &[&str]) -> &'a Yaml {
    path.iter().fold(value, |v, key| {
        v.get(*key)
            .unwrap_or_else(|| panic!("template.yaml: missing {} (at {key})", path.join(".")))
    })
}

/// The policy files, sorted by name: (file stem, document).
pub fn policy_files() -> Vec<(String, Json)> {
    let dir = crate_dir().join("policies");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read policy");
            let doc = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            (stem, doc)
        })
        .collect()
}

pub fn policy_file(stem: &str) -> Json {
    policy_files()
        .into_iter()
        .find(|(name, _)| name == stem)
        .unwrap_or_else(|| panic!("policies/{stem}.json is missing"))
        .1
}

/// Template YAML as the JSON a policy file holds: `!Sub "text"` becomes "text" (the files keep the placeholders
/// exactly as !Sub takes them). Any other tag stays visible as `{"!Tag": value}`, so it never equals a file.
pub fn to_policy_json(value: &Yaml) -> Json {
    match value {
        Yaml::Null => Json::Null,
        Yaml::Bool(b) => Json::Bool(*b),
        Yaml::Number(n) => serde_json::to_value(n).expect("number"),
        Yaml::String(s) => Json::String(s.clone()),
        Yaml::Sequence(items) => Json::Array(items.iter().map(to_policy_json).collect()),
        Yaml::Mapping(map) => Json::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = k.as_str().map_or_else(|| format!("{k:?}"), str::to_owned);
                    (key, to_policy_json(v))
                })
                .collect(),
        ),
        Yaml::Tagged(tagged) => match (&tagged.value, tagged.tag == "Sub") {
            (Yaml::String(s), true) => Json::String(s.clone()),
            _ => serde_json::json!({ tagged.tag.to_string(): to_policy_json(&tagged.value) }),
        },
    }
}

/// `Action` or `Resource` of a statement as a list (IAM allows a string or a list).
pub fn strings(value: Option<&Json>) -> Vec<String> {
    match value {
        Some(Json::String(s)) => vec![s.clone()],
        Some(Json::Array(items)) => items
            .iter()
            .map(|v| v.as_str().expect("string in list").to_owned())
            .collect(),
        None => Vec::new(),
        Some(other) => panic!("expected a string or a list of strings, got {other}"),
    }
}

pub fn statements(document: &Json) -> &Vec<Json> {
    document["Statement"]
        .as_array()
        .expect("policy document has a Statement list")
}

/// The parameters' values: each `Default`, overridden by `given` (name, value).
pub fn parameters(template: &Yaml, given: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, String> = template
        .get("Parameters")
        .and_then(Yaml::as_mapping)
        .into_iter()
        .flatten()
        .filter_map(|(name, parameter)| {
            let default = match parameter.get("Default")? {
                Yaml::String(s) => s.clone(),
                Yaml::Number(n) => n.to_string(),
                Yaml::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((name.as_str()?.to_owned(), default))
        })
        .collect();
    for (name, value) in given {
        assert!(
            template
                .get("Parameters")
                .and_then(|p| p.get(*name))
                .is_some(),
            "template.yaml has no parameter {name}"
        );
        values.insert((*name).to_owned(), (*value).to_owned());
    }
    values
}

/// The template's `Conditions`, evaluated for these parameter values. Knows the intrinsic functions
/// the template's conditions use: `!Equals` (of `!Ref`s and literals), `!Not`, `!And`, `!Or`, `!Condition`.
pub fn conditions(
    template: &Yaml,
    parameters: &BTreeMap<String, String>,
) -> BTreeMap<String, bool> {
    let definitions = template
        .get("Conditions")
        .and_then(Yaml::as_mapping)
        .expect("template.yaml has Conditions");
    fn scalar(value: &Yaml, parameters: &BTreeMap<String, String>) -> String {
        match value {
            Yaml::String(s) => s.clone(),
            Yaml::Number(n) => n.to_string(),
            Yaml::Tagged(t) if t.tag == "Ref" => {
                let name = t.value.as_str().expect("!Ref takes a name");
                parameters
                    .get(name)
                    .unwrap_or_else(|| panic!("!Ref {name}: no such parameter (or no value)"))
                    .clone()
            }
            other => panic!("a condition compares {other:?}: not known to this evaluator"),
        }
    }
    fn evaluate(
        value: &Yaml,
        definitions: &serde_norway::Mapping,
        parameters: &BTreeMap<String, String>,
    ) -> bool {
        let Yaml::Tagged(t) = value else {
            panic!("a condition is an intrinsic function, not {value:?}")
        };
        let args = || t.value.as_sequence().expect("a list of arguments");
        match t.tag.to_string().trim_start_matches('!') {
            "Equals" => scalar(&args()[0], parameters) == scalar(&args()[1], parameters),
            "Not" => !evaluate(&args()[0], definitions, parameters),
            "And" => args().iter().all(|a| evaluate(a, definitions, parameters)),
            "Or" => args().iter().any(|a| evaluate(a, definitions, parameters)),
            "Condition" => {
                let name = t.value.as_str().expect("!Condition takes a name");
                evaluate(&definitions[name], definitions, parameters)
            }
            other => panic!("condition function !{other} is not known to this evaluator"),
        }
    }
    definitions
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().expect("a condition's name").to_owned(),
                evaluate(value, definitions, parameters),
            )
        })
        .collect()
}

/// `value` as CloudFormation resolves it under `conditions`: each `!If [c, a, b]` becomes `a` or `b`,
/// and `!Ref AWS::NoValue` removes its list element or mapping key (`None` at the top).
pub fn resolve(value: &Yaml, conditions: &BTreeMap<String, bool>) -> Option<Yaml> {
    match value {
        Yaml::Tagged(t) if t.tag == "Ref" && t.value.as_str() == Some("AWS::NoValue") => None,
        Yaml::Tagged(t) if t.tag == "If" => {
            let parts = t.value.as_sequence().expect("!If takes a list");
            assert_eq!(parts.len(), 3, "!If [Condition, then, else]");
            let name = parts[0].as_str().expect("!If names a condition");
            let holds = *conditions
                .get(name)
                .unwrap_or_else(|| panic!("!If {name}: no such condition"));
            resolve(&parts[if holds { 1 } else { 2 }], conditions)
        }
        Yaml::Tagged(t) => Some(Yaml::Tagged(Box::new(serde_norway::value::TaggedValue {
            tag: t.tag.clone(),
            value: resolve(&t.value, conditions)?,
        }))),
        Yaml::Sequence(items) => Some(Yaml::Sequence(
            items
                .iter()
                .filter_map(|i| resolve(i, conditions))
                .collect(),
        )),
        Yaml::Mapping(map) => Some(Yaml::Mapping(
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), resolve(v, conditions)?)))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// The template as deployed with these parameters (the rest at their defaults): resources and
/// outputs whose `Condition` is false left out, every `!If` and `AWS::NoValue` resolved.
pub fn template_with(given: &[(&str, &str)]) -> Yaml {
    let template = template();
    let conditions = conditions(&template, &parameters(&template, given));
    let mut resolved = resolve(&template, &conditions).expect("a template");
    for section in ["Resources", "Outputs"] {
        if let Some(entries) = resolved.get_mut(section).and_then(Yaml::as_mapping_mut) {
            entries.retain(|_, entry| {
                entry
                    .get("Condition")
                    .and_then(Yaml::as_str)
                    .is_none_or(|c| conditions[c])
            });
        }
    }
    resolved
}

/// The values `ReadCache` allows (one way of deploying each).
pub fn read_cache_choices() -> Vec<String> {
    let template = template();
    at(&template, &["Parameters", "ReadCache", "AllowedValues"])
        .as_sequence()
        .expect("ReadCache AllowedValues is a list")
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}
