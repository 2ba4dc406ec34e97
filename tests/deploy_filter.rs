//! The template's FilterCriteria and the code's relevance rule (`messaging_stream::event::is_relevant`) decide
//! alike: over every record of events/*.json, and over variants of them that each change one thing the rule
//! looks at. If they disagreed, Lambda would drop records the code wants, or invoke it for records it ignores.

mod deploy_support;

use ddb::filter::{EventFilter, FilterError};
use deploy_support::*;
use messaging_stream::event::is_relevant;
use serde_json::{json, Value as Json};

/// (file, index, record) for every record of events/*.json.
fn fixture_records() -> Vec<(String, usize, Json)> {
    let dir = crate_dir().join("events");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut records = Vec::new();
    for path in files {
        let event: Json =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read event"))
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        let Some(list) = event.get("Records").and_then(Json::as_array) else {
            continue; // not a stream event (e.g. another kind of fixture)
        };
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        records.extend(
            list.iter()
                .enumerate()
                .map(|(i, r)| (name.clone(), i, r.clone())),
        );
    }
    records
}

/// Each fixture record, changed in one field the rule reads. Only shapes DynamoDB Streams can produce.
fn variants(record: &Json) -> Vec<(String, Json)> {
    let mut out = Vec::new();
    for name in ["INSERT", "MODIFY", "REMOVE", "insert"] {
        let mut r = record.clone();
        r["eventName"] = json!(name);
        out.push((format!("eventName={name}"), r));
    }
    for pk in ["MSG#g", "MSG#", "GRP#owner", "msg#g", "XMSG#g", "MSG"] {
        let mut r = record.clone();
        r["dynamodb"]["Keys"]["pk"] = json!({ "S": pk });
        out.push((format!("pk={pk}"), r));
    }
    let mut r = record.clone();
    r["dynamodb"]["Keys"]["pk"] = json!({"N": "7"});
    out.push(("pk is a number".into(), r));
    let mut r = record.clone();
    if let Some(image) = r["dynamodb"]["NewImage"].as_object_mut() {
        image.remove("message");
    }
    out.push(("no message attribute".into(), r));
    let mut r = record.clone();
    r["dynamodb"]["NewImage"]["message"] = json!({"N": "1"});
    out.push(("message is a number".into(), r));
    let mut r = record.clone();
    r["dynamodb"]["NewImage"]["message"] = json!({"S": ""});
    out.push(("message is empty".into(), r));
    let mut r = record.clone();
    if let Some(change) = r["dynamodb"].as_object_mut() {
        change.remove("NewImage");
    }
    out.push(("no NewImage".into(), r));
    out
}

/// Records on which the filter and the code disagree, described.
fn disagreements(filter: &EventFilter, records: &[(String, Json)]) -> Vec<String> {
    records
        .iter()
        .filter_map(|(label, record)| {
            let (lambda, code) = (filter.matches(record), is_relevant(record));
            (lambda != code).then(|| format!("{label}: filter {lambda}, is_relevant {code}"))
        })
        .collect()
}

fn template_filter() -> EventFilter {
    EventFilter::from_template(template_path()).unwrap_or_else(|e| panic!("template.yaml: {e}"))
}

#[test]
fn filter_agrees_with_the_code_on_every_fixture_record() {
    let filter = template_filter();
    let records: Vec<(String, Json)> = fixture_records()
        .into_iter()
        .map(|(file, i, r)| (format!("events/{file} Records[{i}]"), r))
        .collect();
    assert!(
        !records.is_empty(),
        "events/*.json holds no Records: nothing to compare"
    );
    let bad = disagreements(&filter, &records);
    assert!(
        bad.is_empty(),
        "template FilterCriteria and is_relevant disagree:\n{}",
        bad.join("\n")
    );
    // The comparison must be able to fail both ways: the fixtures hold records of both kinds.
    let relevant = records.iter().filter(|(_, r)| is_relevant(r)).count();
    assert!(relevant > 0, "no fixture record is relevant");
    assert!(relevant < records.len(), "every fixture record is relevant");
}

#[test]
fn filter_agrees_with_the_code_on_variants_of_the_fixtures() {
    let filter = template_filter();
    let mut records = Vec::new();
    for (file, i, record) in fixture_records() {
        for (change, variant) in variants(&record) {
            records.push((format!("events/{file} Records[{i}] with {change}"), variant));
        }
    }
    let bad = disagreements(&filter, &records);
    assert!(
        bad.is_empty(),
        "template FilterCriteria and is_relevant disagree:\n{}",
        bad.join("\n")
    );
    let relevant = records.iter().filter(|(_, r)| is_relevant(r)).count();
    assert!(relevant > 0 && relevant < records.len());
}

/// The comparison above is not vacuous: a filter that forgets one condition of the rule is caught.
#[test]
fn a_weaker_filter_is_caught() {
    let records: Vec<(String, Json)> = fixture_records()
        .into_iter()
        .flat_map(|(file, i, r)| {
            variants(&r)
                .into_iter()
                .map(move |(change, v)| (format!("events/{file} Records[{i}] with {change}"), v))
        })
        .collect();
    const WRITES: &str = r#"{"eventName":["INSERT","MODIFY"],"dynamodb":{"Keys":{"pk":{"S":[{"prefix":"MSG#"}]}},"NewImage":{"message":{"S":[{"exists":true}]}}}}"#;
    const REMOVES: &str =
        r#"{"eventName":["REMOVE"],"dynamodb":{"Keys":{"pk":{"S":[{"prefix":"MSG#"}]}}}}"#;
    for weaker in [
        // deleted messages missed
        vec![WRITES],
        // no NewImage.message condition
        vec![
            r#"{"eventName":["INSERT","MODIFY"],"dynamodb":{"Keys":{"pk":{"S":[{"prefix":"MSG#"}]}}}}"#,
            REMOVES,
        ],
        // the function's own GRP# deletes let through
        vec![WRITES, r#"{"eventName":["REMOVE"]}"#],
        // the function's own GRP# writes let through
        vec![
            r#"{"eventName":["INSERT","MODIFY"],"dynamodb":{"NewImage":{"message":{"S":[{"exists":true}]}}}}"#,
            REMOVES,
        ],
    ] {
        let filter = EventFilter::from_patterns(weaker.clone()).unwrap();
        assert!(
            !disagreements(&filter, &records).is_empty(),
            "a weaker filter went unnoticed: {weaker:?}"
        );
    }
}

#[test]
fn a_template_without_the_filter_is_rejected() {
    let text = template_text();
    let start = text
        .find("            FilterCriteria:")
        .expect("template has FilterCriteria");
    let end = text[start..]
        .find("            DestinationConfig:")
        .expect("DestinationConfig follows FilterCriteria")
        + start;
    let broken = format!("{}{}", &text[..start], &text[end..]);
    match EventFilter::from_template_str(&broken) {
        Err(FilterError::NoFilterCriteria { event }) => {
            assert_eq!(event, "MessagingStreamFunction.TableStream")
        }
        other => panic!("expected NoFilterCriteria, got {other:?}"),
    }
}
