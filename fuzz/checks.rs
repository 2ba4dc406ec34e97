//! The properties the fuzz targets check, shared with the regression tests in
//! tests/reliability/fuzz.rs (tests/reliability/main.rs includes this file), so every finding stays fixed.
//!
//! Event parsing ([`check_event`]): never panics; the Lambda binary's raw path agrees with the
//! `Value` path; one outcome per record, in batch order; a record is relevant exactly when the
//! template's FilterCriteria delivers it (the rule as the deployment states it, matched by quamina
//! as Lambda's filtering does: not the code's own `event::is_relevant`), unless it is malformed,
//! and a relevant record carries the raw record's group, sort key and text; no reason and no `Debug` output contains a
//! string value of the record (message text must never reach a log line); coalescing keeps, per
//! group, a newest message. Timestamp ordering ([`check_order`]): `compare` is a total order
//! (reflexive, antisymmetric, transitive), agrees with `is_newer`, and never panics.

use ddb::filter::EventFilter;
use messaging_stream::event::{self, Parsed};
use messaging_stream::{plan, timestamp};
use serde_json::Value;
use std::cmp::Ordering;
use std::sync::OnceLock;

/// The template's FilterCriteria, compiled once: the relevance rule as the deployment states it.
fn template_filter() -> &'static EventFilter {
    static FILTER: OnceLock<EventFilter> = OnceLock::new();
    FILTER.get_or_init(|| {
        EventFilter::from_template_str(include_str!("../template.yaml"))
            .expect("template.yaml's FilterCriteria compiles")
    })
}

/// Words serde and the parser may print on their own (field and type names): a record value
/// that is one of them, or inside one, proves nothing when it shows up in a reason.
const VOCABULARY: &str = "eventID eventName eventVersion eventSource awsRegion dynamodb \
    ApproximateCreationDateTime Keys NewImage OldImage SequenceNumber SizeBytes StreamViewType \
    NEW_IMAGE OLD_IMAGE NEW_AND_OLD_IMAGES KEYS_ONLY userIdentity recordFormat tableName \
    eventSourceARN INSERT MODIFY REMOVE message | not a DynamoDB stream record: missing field `| \
    invalid type: string, expected i64 | invalid type: map, expected a string | \
    invalid type: sequence, expected | invalid type: integer `| invalid type: floating point `| \
    invalid type: boolean `| invalid type: null, expected | invalid value: | \
    expected a unix timestamp as a float | value is not a legal timestamp: | \
    unknown variant `<redacted>`, expected one of `NEW_IMAGE`, `OLD_IMAGE`, \
    `NEW_AND_OLD_IMAGES`, `KEYS_ONLY` | unknown variant `<redacted>`, expected one of `B`, `BOOL`, \
    `BS`, `L`, `M`, `N`, `NS`, `NULL`, `S`, `SS` | The key '<redacted>' is not a known DynamoDB \
    prefix | Invalid symbol | , offset | Invalid padding | Invalid last symbol | \
    Encoded text cannot have a 6-bit remainder. | invalid length | \
    Keys.pk is not a string | Keys.pk names no message group | \
    Keys.sk is missing, empty or not a string | NewImage.message is not a string | \
    Ignored { record: RecordRef { position: | event_id: Some( | None | sequence_number: | \
    reason: UnknownEventName | NotAMessage | NoMessageText }";

/// Checks the parsing properties on arbitrary bytes (JSON or not).
pub fn check_event(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    check_event_value(&value);
    // The Lambda binary's path (records kept as raw JSON until each is parsed) must agree, on
    // objects: serde's derived `RawEvent` also takes an array (`[[records]]`) as an event, which
    // Lambda never sends (a finding of this target, left as it is).
    if !value.is_object() {
        return;
    }
    if let Ok(raw) = serde_json::from_slice::<event::RawEvent>(data) {
        match (event::parse_raw_event(&raw), event::parse_event(&value)) {
            (Ok(from_raw), Ok(from_value)) => assert_eq!(from_raw, from_value),
            (Err(_), Err(_)) => {}
            (from_raw, from_value) => {
                // `"Records": null` is no array to either; anything else must match.
                assert!(
                    value.get("Records").is_some_and(Value::is_null),
                    "raw path {from_raw:?}, value path {from_value:?}"
                );
            }
        }
    }
}

/// Checks the parsing properties on one JSON value taken as a Lambda event.
pub fn check_event_value(value: &Value) {
    let parsed = match event::parse_event(value) {
        Ok(parsed) => parsed,
        Err(_) => {
            assert!(value.get("Records").and_then(Value::as_array).is_none());
            return;
        }
    };
    let records = value["Records"]
        .as_array()
        .expect("parse_event found Records");
    assert_eq!(parsed.len(), records.len());
    let mut messages = Vec::new();
    for (position, (outcome, raw)) in parsed.iter().zip(records).enumerate() {
        assert_eq!(outcome.record().position, position);
        // Relevant exactly when the filter delivers it: a delivered record is relevant or
        // malformed (never ignored), a dropped one never relevant.
        let delivered = template_filter().matches(raw);
        match outcome {
            Parsed::Relevant(_) => assert!(delivered, "relevant, but the filter drops it: {raw}"),
            Parsed::Ignored { .. } => {
                assert!(
                    !delivered,
                    "the filter delivers it, but it is ignored: {raw}"
                )
            }
            Parsed::Malformed { .. } => {}
        }
        let shown = match outcome {
            Parsed::Relevant(message) => {
                let pk = raw.pointer("/dynamodb/Keys/pk/S").and_then(Value::as_str);
                assert_eq!(pk, Some(format!("MSG#{}", message.group_uuid).as_str()));
                assert!(!message.group_uuid.is_empty() && !message.created_at.is_empty());
                assert_eq!(
                    raw.pointer("/dynamodb/Keys/sk/S").and_then(Value::as_str),
                    Some(message.created_at.as_str())
                );
                messages.push(message.clone());
                let event::Change::Write(text) = &message.change else {
                    assert_eq!(raw.get("eventName").and_then(Value::as_str), Some("REMOVE"));
                    continue;
                };
                assert_eq!(
                    raw.pointer("/dynamodb/NewImage/message/S")
                        .and_then(Value::as_str),
                    Some(text.as_str())
                );
                // The text's `Debug` is its length only: nothing of the record can show.
                let len = text.as_str().len();
                assert_eq!(format!("{text:?}"), format!("MessageText(<{len} bytes>)"));
                continue;
            }
            Parsed::Ignored { .. } => format!("{outcome:?}"),
            Parsed::Malformed { reason, .. } => reason.clone(),
        };
        assert_no_value_shown(raw, &shown);
    }
    check_coalesce(messages);
}

/// No string value of `raw` (but its identifiers, `eventID` and `SequenceNumber`) appears in
/// `shown`, not even an 8-character piece of one outside the vocabulary.
pub fn assert_no_value_shown(raw: &Value, shown: &str) {
    // The identifiers themselves are shown on purpose: take them out before looking.
    let mut shown = shown.to_owned();
    for id in [raw.get("eventID"), raw.pointer("/dynamodb/SequenceNumber")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        shown = shown.replace(&format!("{id:?}"), "").replace(id, "");
    }
    let mut values = Vec::new();
    collect_strings(raw, &mut values);
    for value in values {
        let chars: Vec<char> = value.chars().collect();
        for window in chars.windows(8) {
            let piece: String = window.iter().collect();
            if VOCABULARY.contains(&piece) || piece.trim().is_empty() {
                continue;
            }
            assert!(
                !shown.contains(&piece),
                "a value of the record ({piece:?}) shows in: {shown}"
            );
        }
    }
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        // Record identifiers are logged on purpose: they name the record, not the user's words.
        Value::Object(map) => map
            .iter()
            .filter(|(key, _)| !matches!(key.as_str(), "eventID" | "SequenceNumber"))
            .for_each(|(_, v)| collect_strings(v, out)),
        _ => {}
    }
}

/// One update per group: its latest is a newest written key whose last record wrote that text,
/// and its removed keys are exactly those whose last record was a REMOVE.
fn check_coalesce(messages: Vec<event::MessageChange>) {
    let updates = plan::coalesce(messages.clone());
    let mut groups: Vec<&str> = messages.iter().map(|m| m.group_uuid.as_str()).collect();
    groups.sort();
    groups.dedup();
    assert_eq!(updates.len(), groups.len());
    for update in &updates {
        let of_group: Vec<_> = messages
            .iter()
            .filter(|m| m.group_uuid == update.group_uuid)
            .collect();
        assert_eq!(update.records, of_group.len());
        // Per key, the record latest in the batch decides.
        let mut last: std::collections::BTreeMap<&str, &event::MessageChange> = Default::default();
        for m in &of_group {
            let kept = last.entry(m.created_at.as_str()).or_insert(m);
            if m.record.position >= kept.record.position {
                *kept = m;
            }
        }
        let removed: std::collections::BTreeSet<String> = last
            .iter()
            .filter(|(_, m)| m.change == event::Change::Remove)
            .map(|(k, _)| (*k).to_owned())
            .collect();
        assert_eq!(update.removed, removed);
        let written: Vec<_> = last
            .values()
            .filter_map(|m| match &m.change {
                event::Change::Write(text) => Some((m.created_at.as_str(), text)),
                event::Change::Remove => None,
            })
            .collect();
        match &update.latest {
            None => assert!(written.is_empty()),
            Some(latest) => {
                for (sk, _) in &written {
                    assert!(
                        !timestamp::is_newer(sk, &latest.sk),
                        "coalesce kept {:?} but {:?} is newer",
                        latest.sk,
                        sk
                    );
                }
                assert!(written
                    .iter()
                    .any(|(sk, text)| *sk == latest.sk && **text == latest.text));
            }
        }
    }
}

/// Splits fuzz bytes into three timestamps and checks the ordering properties on them.
pub fn check_order_bytes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '|');
    let a = parts.next().unwrap_or("");
    let b = parts.next().unwrap_or("");
    let c = parts.next().unwrap_or("");
    check_order(a, b, c);
}

/// `compare` is a total order on `a`, `b`, `c` and `is_newer` agrees with it.
pub fn check_order(a: &str, b: &str, c: &str) {
    let _ = timestamp::parse_instant(a);
    for x in [a, b, c] {
        assert_eq!(timestamp::compare(x, x), Ordering::Equal, "{x:?}");
        assert!(!timestamp::is_newer(x, x));
    }
    for (x, y) in [(a, b), (b, c), (a, c)] {
        let xy = timestamp::compare(x, y);
        assert_eq!(xy, timestamp::compare(y, x).reverse(), "{x:?} {y:?}");
        assert_eq!(timestamp::is_newer(x, y), xy == Ordering::Greater);
    }
    for (x, y, z) in [
        (a, b, c),
        (a, c, b),
        (b, a, c),
        (b, c, a),
        (c, a, b),
        (c, b, a),
    ] {
        if timestamp::compare(x, y) != Ordering::Greater
            && timestamp::compare(y, z) != Ordering::Greater
        {
            assert_ne!(
                timestamp::compare(x, z),
                Ordering::Greater,
                "not transitive: {x:?} <= {y:?} <= {z:?} but {x:?} > {z:?}"
            );
        }
    }
}
