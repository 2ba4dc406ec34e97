//! Items as the CLI prints them: JSON without loss (numbers exactly as DynamoDB holds them, binary
//! as base64, sets as arrays), DynamoDB JSON as the AWS CLI prints it (`--raw`), and table cells
//! that keep one item on one line.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::fmt::Write as _;

/// How `--json` writes an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Plain JSON values: `{"n": 12345678901234567890123, "b": "AQI=", "ss": ["a", "b"]}`.
    Plain,
    /// DynamoDB JSON, as `aws dynamodb scan` prints it: `{"n": {"N": "123"}, "b": {"B": "AQI="}}`.
    Dynamo,
}

/// One item as one line of JSON, attributes in name order.
pub fn item_json(item: &HashMap<String, AttributeValue>, style: Style) -> String {
    let mut out = String::new();
    map(&mut out, item, style);
    out
}

fn string(out: &mut String, text: &str) {
    // Serialising a &str cannot fail.
    out.push_str(&serde_json::to_string(text).expect("a string serialises"));
}

/// A DynamoDB number as JSON text: exact digits. DynamoDB's numbers are JSON numbers, except that
/// JSON wants a digit before a point (`.5`) and takes no `+`; those become valid JSON, digits kept.
fn number(out: &mut String, n: &str) {
    let trimmed = n.trim().trim_start_matches('+');
    let (sign, digits) = match trimmed.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", trimmed),
    };
    let digits = if digits.starts_with('.') {
        format!("0{digits}")
    } else {
        digits.to_owned()
    };
    let candidate = format!("{sign}{digits}");
    if serde_json::from_str::<serde_json::Number>(&candidate).is_ok() {
        out.push_str(&candidate);
    } else {
        // Not a number at all (DynamoDB would not store it): keep the text.
        string(out, n);
    }
}

fn map(out: &mut String, item: &HashMap<String, AttributeValue>, style: Style) {
    let mut names: Vec<&String> = item.keys().collect();
    names.sort();
    out.push('{');
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, name);
        out.push(':');
        value(out, &item[name], style);
    }
    out.push('}');
}

fn list<T>(out: &mut String, items: &[T], mut each: impl FnMut(&mut String, &T)) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        each(out, item);
    }
    out.push(']');
}

fn value(out: &mut String, value: &AttributeValue, style: Style) {
    let tag = |out: &mut String, tag: &str| {
        if style == Style::Dynamo {
            let _ = write!(out, "{{\"{tag}\":");
        }
    };
    let close = |out: &mut String| {
        if style == Style::Dynamo {
            out.push('}');
        }
    };
    let base64 = |out: &mut String, blob: &aws_sdk_dynamodb::primitives::Blob| {
        string(out, &aws_smithy_types::base64::encode(blob.as_ref()))
    };
    // DynamoDB JSON keeps numbers as strings (so nothing is lost either way).
    let dynamo = style == Style::Dynamo;
    match value {
        AttributeValue::S(s) => {
            tag(out, "S");
            string(out, s);
            close(out);
        }
        AttributeValue::N(n) => {
            tag(out, "N");
            if dynamo {
                string(out, n)
            } else {
                number(out, n)
            }
            close(out);
        }
        AttributeValue::B(b) => {
            tag(out, "B");
            base64(out, b);
            close(out);
        }
        AttributeValue::Bool(b) => {
            tag(out, "BOOL");
            out.push_str(if *b { "true" } else { "false" });
            close(out);
        }
        AttributeValue::Null(_) => {
            tag(out, "NULL");
            out.push_str(if dynamo { "true" } else { "null" });
            close(out);
        }
        AttributeValue::Ss(ss) => {
            tag(out, "SS");
            list(out, ss, |out, s| string(out, s));
            close(out);
        }
        AttributeValue::Ns(ns) => {
            tag(out, "NS");
            list(out, ns, |out, n| {
                if dynamo {
                    string(out, n)
                } else {
                    number(out, n)
                }
            });
            close(out);
        }
        AttributeValue::Bs(bs) => {
            tag(out, "BS");
            list(out, bs, |out, b| base64(out, b));
            close(out);
        }
        AttributeValue::L(l) => {
            tag(out, "L");
            list(out, l, |out, v| self::value(out, v, style));
            close(out);
        }
        AttributeValue::M(m) => {
            tag(out, "M");
            map(out, m, style);
            close(out);
        }
        // A type newer than this SDK: say so rather than drop the attribute.
        _ => string(out, "(an attribute type this ddb does not know)"),
    }
}

/// A table cell: strings as they are, other types as plain JSON, with line breaks, tabs and other
/// control characters escaped so that one item stays on one line.
pub fn cell(value: Option<&AttributeValue>) -> String {
    let text = match value {
        None => return String::new(),
        Some(AttributeValue::S(s)) => s.clone(),
        Some(other) => {
            let mut out = String::new();
            self::value(&mut out, other, Style::Plain);
            out
        }
    };
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(escaped, "\\u{{{:x}}}", c as u32);
            }
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::primitives::Blob;

    fn every_type() -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("s".into(), AttributeValue::S("a\n\"b\"".into())),
            (
                "n".into(),
                AttributeValue::N("12345678901234567890123".into()),
            ),
            (
                "f".into(),
                AttributeValue::N("-0.000000000000000000001".into()),
            ),
            ("b".into(), AttributeValue::B(Blob::new(vec![0u8, 1, 255]))),
            ("t".into(), AttributeValue::Bool(true)),
            ("z".into(), AttributeValue::Null(true)),
            (
                "ss".into(),
                AttributeValue::Ss(vec!["x".into(), "y".into()]),
            ),
            (
                "ns".into(),
                AttributeValue::Ns(vec!["1".into(), "2.50".into()]),
            ),
            ("bs".into(), AttributeValue::Bs(vec![Blob::new(vec![7u8])])),
            (
                "l".into(),
                AttributeValue::L(vec![AttributeValue::N("1".into())]),
            ),
            (
                "m".into(),
                AttributeValue::M(HashMap::from([("k".into(), AttributeValue::S("v".into()))])),
            ),
        ])
    }

    #[test]
    fn plain_json_loses_nothing() {
        let json = item_json(&every_type(), Style::Plain);
        assert_eq!(
            json,
            r#"{"b":"AAH/","bs":["Bw=="],"f":-0.000000000000000000001,"l":[1],"m":{"k":"v"},"n":12345678901234567890123,"ns":[1,2.50],"s":"a\n\"b\"","ss":["x","y"],"t":true,"z":null}"#
        );
        assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok());
    }

    #[test]
    fn raw_is_dynamodb_json() {
        let json = item_json(&every_type(), Style::Dynamo);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            value["n"],
            serde_json::json!({"N": "12345678901234567890123"})
        );
        assert_eq!(value["b"], serde_json::json!({"B": "AAH/"}));
        assert_eq!(value["ns"], serde_json::json!({"NS": ["1", "2.50"]}));
        assert_eq!(value["z"], serde_json::json!({"NULL": true}));
        assert_eq!(value["m"], serde_json::json!({"M": {"k": {"S": "v"}}}));
        // serde_dynamo reads it back as the same item.
        let item: serde_dynamo::Item = serde_json::from_value(value).unwrap();
        let back: HashMap<String, AttributeValue> = item.into();
        assert_eq!(back, every_type());
    }

    #[test]
    fn cells_stay_on_one_line() {
        assert_eq!(
            cell(Some(&AttributeValue::S("a\nb\tc".into()))),
            "a\\nb\\tc"
        );
        assert_eq!(cell(Some(&AttributeValue::N("7".into()))), "7");
        assert_eq!(cell(None), "");
    }
}
