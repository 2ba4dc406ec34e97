//! The Lambda crate's shape, read from `src/`: its modules import one another one way only (no
//! circle), and only the store (src/store.rs) and the DynamoDB cache backend (src/cache/dynamo.rs)
//! call DynamoDB.
//!
//! "The Lambda's modules" are those src/lib.rs declares: the root package is the Lambda alone (the
//! CLI is the `ddb` workspace member, the tests' kit `testkit`), and its manifest names none of the
//! tools' dependencies and no cargo feature. An import is a `crate::<module>` path in code
//! (`use crate::x::...;`, `crate::x::f(...)`, `use crate::{x, y}`); comments and each file's
//! `#[cfg(test)]` tail do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The DynamoDB client's operations (as fluent-builder calls: `.query()`), that only the store and
/// the cache backend may send.
const OPERATIONS: &[&str] = &[
    "batch_get_item",
    "batch_write_item",
    "create_table",
    "delete_item",
    "delete_table",
    "describe_table",
    "describe_time_to_live",
    "execute_statement",
    "get_item",
    "list_tables",
    "put_item",
    "query",
    "scan",
    "transact_get_items",
    "transact_write_items",
    "update_item",
    "update_table",
    "update_time_to_live",
];

/// The files that may call them, relative to src/.
const DYNAMODB_CALLERS: &[&str] = &["store.rs", "cache/dynamo.rs"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The modules src/lib.rs declares.
fn declared_modules(lib: &str) -> Vec<String> {
    lib.lines()
        .map(str::trim)
        .filter_map(|line| {
            line.strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("mod "))
                .and_then(|rest| rest.strip_suffix(';'))
        })
        .map(|name| name.trim().to_owned())
        .collect()
}

/// A module's source files: src/<m>.rs, or every .rs file under src/<m>/.
fn module_files(src: &Path, module: &str) -> Vec<PathBuf> {
    let file = src.join(format!("{module}.rs"));
    if file.is_file() {
        return vec![file];
    }
    let mut files = Vec::new();
    let mut dirs = vec![src.join(module)];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("module {module}: cannot read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    assert!(!files.is_empty(), "module {module}: no source file found");
    files.sort();
    files
}

/// The code of a file: without comment lines and without its `#[cfg(test)]` tail.
fn code(text: &str) -> String {
    let mut lines = Vec::new();
    let mut all = text.lines().peekable();
    while let Some(line) = all.next() {
        let trimmed = line.trim();
        if trimmed == "#[cfg(test)]"
            && all
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests"))
        {
            break;
        }
        if !trimmed.starts_with("//") {
            lines.push(line);
        }
    }
    lines.join("\n")
}

fn leading_ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first path segment after each `crate::`, and each top-level name of `crate::{a, b::c}`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        // `messaging_stream::` or `some_crate::` are not this crate.
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut item_start) = (0usize, true);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        names.insert(leading_ident(&group[i..]).to_owned());
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            names.insert(leading_ident(rest).to_owned());
        }
    }
    names
}

/// A circle in `graph`, as the path `a -> b -> ... -> a`, if there is one.
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_owned(), Mark::Open);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next.as_str()) {
                Some(Mark::Open) => {
                    let from = path.iter().position(|n| n == next).unwrap();
                    let mut circle = path[from..].to_vec();
                    circle.push(next.clone());
                    return Some(circle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(circle) = visit(next, graph, marks, path) {
                        return Some(circle);
                    }
                }
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if !marks.contains_key(node.as_str()) {
            if let Some(circle) = visit(node, graph, &mut marks, &mut Vec::new()) {
                return Some(circle);
            }
        }
    }
    None
}

/// The Lambda's modules, each with its files' code.
fn lambda_modules() -> BTreeMap<String, Vec<(PathBuf, String)>> {
    let src = src();
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("read src/lib.rs");
    declared_modules(&lib)
        .into_iter()
        .map(|module| {
            let files = module_files(&src, &module)
                .into_iter()
                .map(|path| {
                    let text = std::fs::read_to_string(&path).unwrap();
                    (path, code(&text))
                })
                .collect();
            (module, files)
        })
        .collect()
}

fn import_graph(
    modules: &BTreeMap<String, Vec<(PathBuf, String)>>,
) -> BTreeMap<String, BTreeSet<String>> {
    modules
        .iter()
        .map(|(module, files)| {
            let imports = files
                .iter()
                .flat_map(|(_, code)| crate_paths(code))
                .filter(|name| name != module && modules.contains_key(name))
                .collect();
            (module.clone(), imports)
        })
        .collect()
}

#[test]
fn the_lambdas_modules_import_one_way() {
    let modules = lambda_modules();
    for expected in [
        "model", "config", "aws", "store", "apply", "handler", "metrics",
    ] {
        assert!(
            modules.contains_key(expected),
            "src/lib.rs declares no module {expected}: {:?}",
            modules.keys().collect::<Vec<_>>()
        );
    }
    let graph = import_graph(&modules);
    // Read as it should be: the handler imports the store, and the model imports nothing of ours.
    assert!(graph["handler"].contains("store"), "{graph:?}");
    assert!(
        graph["model"].is_empty(),
        "src/model.rs is the bottom of the crate and imports {:?}",
        graph["model"]
    );
    if let Some(circle) = find_circle(&graph) {
        panic!(
            "import circle among the Lambda's modules: {}\n(the module graph: {graph:#?})",
            circle.join(" -> ")
        );
    }
}

#[test]
fn only_the_store_and_the_cache_backend_call_dynamodb() {
    let src = src();
    let mut callers = BTreeMap::new();
    for (path, code) in lambda_modules().into_values().flatten() {
        let relative = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let called: Vec<_> = OPERATIONS
            .iter()
            .filter(|op| code.contains(&format!(".{op}()")))
            .copied()
            .collect();
        if !called.is_empty() {
            callers.insert(relative, called);
        }
    }
    // The reading is not blind: the store's writes and the backend's invalidation are seen.
    assert!(
        callers
            .get("store.rs")
            .is_some_and(|ops| ops.contains(&"transact_write_items")),
        "{callers:?}"
    );
    assert!(
        callers
            .get("cache/dynamo.rs")
            .is_some_and(|ops| ops.contains(&"batch_write_item")),
        "{callers:?}"
    );
    let others: BTreeMap<_, _> = callers
        .iter()
        .filter(|(file, _)| !DYNAMODB_CALLERS.contains(&file.as_str()))
        .collect();
    assert!(
        others.is_empty(),
        "only src/store.rs and src/cache/dynamo.rs may call DynamoDB; these call it too: {others:?}"
    );
}

#[test]
fn the_readers_see_imports_and_circles() {
    let code = code(
        "use crate::a::B;\n// use crate::commented;\nfn f() { crate::b::g(); other_crate::c::h(); }\n\
         use crate::{d, e::F, self_};\n#[cfg(test)]\nmod tests {\n    use crate::tested;\n}\n",
    );
    assert_eq!(
        crate_paths(&code).into_iter().collect::<Vec<_>>(),
        ["a", "b", "d", "e", "self_"]
    );
    let graph = |edges: &[(&str, &str)]| {
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            graph
                .entry((*from).to_owned())
                .or_default()
                .insert((*to).to_owned());
            graph.entry((*to).to_owned()).or_default();
        }
        graph
    };
    assert_eq!(
        find_circle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])),
        None
    );
    assert_eq!(
        find_circle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let lib = "//! pub mod doc;\npub mod a;\n#[cfg(test)]\nmod t;\npub mod b;\n";
    assert_eq!(declared_modules(lib), ["a", "t", "b"]);
}

/// The tools' dependencies: none of them may reach the Lambda's package (`sam build` and
/// `make package` build it with its manifest as it is; there are no features to turn off).
const TOOLS_ONLY: &[&str] = &[
    "clap",
    "quamina",
    "serde_norway",
    "serde_yaml",
    "aws-sdk-dynamodbstreams",
    "httparse",
    "rustix",
    "ddb",
    "testkit",
];

/// The names of a manifest section's entries (`[dependencies]`: `name = ...` or `name.workspace = true`).
fn section_keys(manifest: &str, section: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut inside = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == section;
            continue;
        }
        if inside && !line.is_empty() && !line.starts_with('#') {
            let key = line.split(['=', '.']).next().unwrap_or("").trim();
            keys.push(key.to_owned());
        }
    }
    keys
}

#[test]
fn the_lambdas_package_has_no_features_and_no_tools_dependency() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let dependencies = section_keys(&manifest, "[dependencies]");
    assert!(
        dependencies.contains(&"aws-sdk-dynamodb".to_owned()),
        "{dependencies:?}"
    );
    for tool in TOOLS_ONLY {
        assert!(
            !dependencies.iter().any(|d| d == tool),
            "the Lambda's package depends on {tool}, which only the tools use: move it to ddb/ or testkit/"
        );
    }
    assert!(
        section_keys(&manifest, "[features]").is_empty(),
        "the Lambda's package has cargo features: the Lambda must build as it is (sam build passes none)"
    );
    let members = section_keys(&manifest, "[workspace]");
    assert!(members.contains(&"members".to_owned()), "{members:?}");
}

#[test]
fn the_manifest_reader_sees_dependencies_and_features() {
    let manifest = "[package]\nname = \"x\"\n[dependencies]\nclap.workspace = true\n# c\ntokio = { version = \"1\" }\n[features]\ntools = []\n";
    assert_eq!(section_keys(manifest, "[dependencies]"), ["clap", "tokio"]);
    assert_eq!(section_keys(manifest, "[features]"), ["tools"]);
}
