//! Items as the CLI prints them: JSON without loss (numbers exactly as DynamoDB holds them, binary
//! as base64, sets as arrays), DynamoDB JSON as the AWS CLI prints it (`--raw`), and tables for a
//! person: one item a line, whatever its text holds (any length, line breaks, controls,
//! bidirectional overrides), cut to the terminal's width.

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

/// A table cell's text: strings as they are, other types as plain JSON (not yet escaped nor cut).
pub fn cell_text(value: Option<&AttributeValue>) -> String {
    match value {
        None => String::new(),
        Some(AttributeValue::S(s)) => s.clone(),
        Some(other) => {
            let mut out = String::new();
            self::value(&mut out, other, Style::Plain);
            out
        }
    }
}

/// True for a character a table never prints as it is: controls (C0, DEL, C1: line breaks and tabs
/// among them), the line and paragraph separators, and the bidirectional formatting characters
/// that would reorder the rest of the line on the screen (U+061C, U+200E, U+200F, U+202A-U+202E,
/// U+2066-U+2069).
fn is_escaped(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `text` on one line, as printable as it was: `\n`, `\r`, `\t`, and `\u{..}` for the other
/// characters of `is_escaped`.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if is_escaped(c) => {
                let _ = write!(escaped, "\\u{{{:x}}}", c as u32);
            }
            c => escaped.push(c),
        }
    }
    escaped
}

/// The width of a table line when stdout is not a terminal and `COLUMNS` is unset.
pub const PIPED_WIDTH: usize = 160;
/// No column is cut narrower than this (on a narrower terminal the line wraps, still one line).
pub const MIN_COLUMN: usize = 8;
const ELLIPSIS: char = '\u{2026}';

/// How wide a table may be: `COLUMNS` when set, else the terminal's width when stdout is one, else
/// [`PIPED_WIDTH`].
pub fn output_width() -> usize {
    if let Some(columns) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0)
    {
        return columns;
    }
    #[cfg(unix)]
    {
        use std::io::IsTerminal as _;
        let stdout = std::io::stdout();
        if stdout.is_terminal() {
            if let Ok(size) = rustix::termios::tcgetwinsize(&stdout) {
                if size.ws_col > 0 {
                    return usize::from(size.ws_col);
                }
            }
        }
    }
    PIPED_WIDTH
}

/// An aligned table: the header line, then one line per row. Every cell is escaped ([`escape`]),
/// so each row is exactly one line; when the line would be wider than `width` characters, the
/// widest columns are cut first, each to the same bound (never below [`MIN_COLUMN`]), a cut cell
/// ending in `…`. Widths count characters (a wide character such as an emoji counts one).
pub fn table<S: AsRef<str>>(header: &[&str], rows: &[Vec<S>], width: usize) -> Vec<String> {
    let escape_row = |cells: &[S]| -> Vec<String> {
        (0..header.len())
            .map(|i| {
                cells
                    .get(i)
                    .map_or_else(String::new, |c| escape(c.as_ref()))
            })
            .collect()
    };
    let mut lines: Vec<Vec<String>> = Vec::with_capacity(rows.len() + 1);
    lines.push(header.iter().map(|h| escape(h)).collect());
    lines.extend(rows.iter().map(|row| escape_row(row)));
    let natural: Vec<usize> = (0..header.len())
        .map(|i| {
            lines
                .iter()
                .map(|line| line[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let available = width.saturating_sub(2 * header.len().saturating_sub(1));
    let fits = |bound: usize| natural.iter().map(|&w| w.min(bound)).sum::<usize>() <= available;
    let widest = natural.iter().copied().max().unwrap_or(0);
    // The largest common bound that fits: the widest columns give way first.
    let bound = if fits(widest) {
        widest
    } else {
        let (mut low, mut high) = (MIN_COLUMN, widest);
        while low < high {
            let middle = low + (high - low).div_ceil(2);
            if fits(middle) {
                low = middle;
            } else {
                high = middle - 1;
            }
        }
        low
    };
    let widths: Vec<usize> = natural.iter().map(|&w| w.min(bound)).collect();
    lines
        .into_iter()
        .map(|cells| {
            let mut line = String::new();
            for (i, (cell, &width)) in cells.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let length = cell.chars().count();
                if length > width {
                    line.extend(cell.chars().take(width.saturating_sub(1)));
                    line.push(ELLIPSIS);
                } else {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', width - length));
                }
            }
            line.truncate(line.trim_end().len());
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::primitives::Blob;
    use proptest::prelude::*;

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
        assert_eq!(escape("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(
            escape("abc\u{202e}fed\u{2066}x\u{200f}\u{85}\u{1b}[31m"),
            "abc\\u{202e}fed\\u{2066}x\\u{200f}\\u{85}\\u{1b}[31m"
        );
        assert_eq!(cell_text(Some(&AttributeValue::N("7".into()))), "7");
        assert_eq!(cell_text(None), "");
    }

    #[test]
    fn a_table_is_aligned_and_cut_to_its_width_widest_column_first() {
        let long = "x".repeat(100);
        let rows = vec![
            vec!["2026-01-01", "ann", long.as_str()],
            vec!["2026-01-02", "bob", "short"],
        ];
        let wide = table(&["sk", "who", "message"], &rows, 200);
        assert_eq!(wide[0], "sk          who  message");
        assert_eq!(wide[2], "2026-01-02  bob  short");
        assert_eq!(wide[1].chars().count(), 10 + 2 + 3 + 2 + 100);
        let narrow = table(&["sk", "who", "message"], &rows, 40);
        assert_eq!(
            narrow[1],
            format!("2026-01-01  ann  {}\u{2026}", "x".repeat(22))
        );
        assert!(narrow.iter().all(|l| l.chars().count() <= 40), "{narrow:?}");
        // Below the narrowest bound, cells stop shrinking: the line is longer, still one line.
        let tiny = table(&["sk", "who", "message"], &rows, 5);
        assert_eq!(
            tiny[1],
            format!("2026-01\u{2026}  ann  {}\u{2026}", "x".repeat(7))
        );
    }

    /// Any text: long (to 400 KB), controls, bidirectional overrides, emoji, combining marks.
    fn any_text() -> impl Strategy<Value = String> {
        let interesting = prop_oneof![
            any::<char>(),
            proptest::sample::select(vec![
                '\n',
                '\r',
                '\t',
                '\u{0}',
                '\u{1b}',
                '\u{7f}',
                '\u{85}',
                '\u{9b}',
                '\u{202e}',
                '\u{202a}',
                '\u{2066}',
                '\u{2069}',
                '\u{200e}',
                '\u{200f}',
                '\u{2028}',
                '\u{61c}',
                '\u{301}',
                '\u{200d}',
                '\u{1f600}',
                '\u{1f469}',
                '\u{fe0f}',
                '\u{4e2d}',
                ' ',
                '\\',
                '{',
                '%',
            ]),
        ];
        (
            proptest::collection::vec(interesting, 0..48),
            prop_oneof![
                Just(0usize),
                0..200usize,
                60_000..70_000usize,
                0..400_000usize
            ],
        )
            .prop_map(|(unit, length)| {
                if unit.is_empty() {
                    return String::new();
                }
                let mut text = String::new();
                for c in unit.iter().cycle() {
                    if text.len() + c.len_utf8() > length {
                        break;
                    }
                    text.push(*c);
                }
                if text.is_empty() {
                    text.extend(unit.iter());
                }
                text
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
        #[test]
        fn any_text_renders_one_line_per_row_within_its_width(
            texts in proptest::collection::vec(any_text(), 1..4),
            handle in any_text(),
            width in prop_oneof![Just(0usize), 1..300usize, Just(PIPED_WIDTH)],
        ) {
            let rows: Vec<Vec<String>> = texts
                .iter()
                .map(|t| vec![handle.clone(), t.clone()])
                .collect();
            let lines = table(&["handle", "message"], &rows, width);
            prop_assert_eq!(lines.len(), rows.len() + 1);
            let bound = width.max(2 * MIN_COLUMN + 2);
            // Its own list, not the code's: controls, separators, bidirectional marks and overrides.
            let unsafe_char = |c: char| {
                c.is_control()
                    || matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}')
                    || ('\u{202a}'..='\u{202e}').contains(&c)
                    || ('\u{2066}'..='\u{2069}').contains(&c)
            };
            for line in &lines {
                prop_assert!(!line.chars().any(unsafe_char), "raw control or bidi in {:?}", line);
                prop_assert!(line.chars().count() <= bound, "{} > {}", line.chars().count(), bound);
            }
            // Printed as `ddb` prints it (a line break after each): one line per row, nothing more.
            // (`str::lines` would not count a row whose cells are all empty, an empty last line.)
            let printed = lines.join("\n");
            prop_assert_eq!(printed.split('\n').count(), rows.len() + 1);
        }
    }
}
