//! Helpers shared by the `tests/deploy_*.rs` tests: the crate's paths, template.yaml as YAML, policies/*.json.
//! Each test crate uses a different subset of them.
#![allow(dead_code)]

use serde_json::Value as Json;
use serde_norway::Value as Yaml;
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
