//! Part 5 of the reliability proof, in `make test`: the fuzz targets' properties
//! (fuzz/checks.rs) on every input the project keeps, so each fuzzing finding stays fixed. The
//! fuzzing itself runs in `make fuzz` (part of `make reliability`): see docs/RELIABILITY.md.

use crate::fuzz_checks;
use std::path::{Path, PathBuf};
use testkit::items;

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    files.sort();
    files
}

#[test]
fn event_parsing_holds_on_every_kept_input() {
    let mut checked = 0;
    for dir in ["events", "tests/corpus", "fuzz/regressions/parse_event"] {
        for path in files(dir) {
            let bytes = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| fuzz_checks::check_event(&bytes));
            assert!(
                outcome.is_ok(),
                "{} breaks a parsing property",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "{checked}");
}

#[test]
fn timestamp_order_holds_on_every_kept_input() {
    let files = files("fuzz/regressions/timestamp_order");
    assert!(!files.is_empty());
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| fuzz_checks::check_order_bytes(&bytes));
        assert!(
            outcome.is_ok(),
            "{} breaks an ordering property",
            path.display()
        );
    }
}

/// Finding (parse_event, from the corpus's wrong-quote-in-value.json): the redaction of parse
/// errors stopped at an escaped quote inside the value and logged the rest of it.
#[test]
fn a_quote_inside_a_bad_value_does_not_end_its_redaction() {
    let mut record = items::message_record("g", "2025-01-15T10:00:00", "x", "1");
    record["dynamodb"]["SizeBytes"] = r#"she said "meet me at the docks" twice"#.into();
    fuzz_checks::check_event_value(&serde_json::json!({ "Records": [record] }));
}

/// Timestamps in every form, and garbage, keep a total order.
#[test]
fn mixed_forms_and_garbage_are_totally_ordered() {
    let values = [
        "2023-03-25T23:00:00+05:30",
        "2023-03-25T18:00:00",
        "2023-03-25T20:00:00 garbage",
        "2023-03-25T18:00:00.000+00:00",
        "2023-03-25 18:00:00",
        "not a time",
        "",
        "2023-03-25T17:59:59.999999Z",
    ];
    for a in values {
        for b in values {
            for c in values {
                fuzz_checks::check_order(a, b, c);
            }
        }
    }
}

/// Finding (parse_event fuzzer, `fuzz/regressions/parse_event/crash-b26e...`): serde names an
/// unknown enum value in backticks (`unknown variant `...``), and that value reached the reason.
#[test]
fn an_unknown_enum_value_is_redacted() {
    let mut record = items::message_record("g", "2025-01-15T10:00:00", "x", "1");
    record["dynamodb"]["StreamViewType"] = "meet me at the docks".into();
    fuzz_checks::check_event_value(&serde_json::json!({ "Records": [record] }));
}
