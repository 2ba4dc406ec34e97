//! DynamoDB's size arithmetic: how many bytes an item counts for against the 400 KB item limit and
//! the 4 MB transaction limit, and how much of a text fits in what is left.
//!
//! The rules are the ones DynamoDB documents for item size: an attribute is its name's UTF-8
//! length plus its value; a string or binary is its length; a number is about one byte per two
//! significant digits plus one; a boolean or null is one byte; a list or map adds three bytes plus
//! one per element. Pure arithmetic, no I/O.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// DynamoDB's largest item: 400 KB, attribute names included.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The bytes `item` counts for.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

/// The bytes one attribute value counts for (its name excluded).
pub fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(name, v)| 1 + name.len() + value_size(v))
                .sum::<usize>()
        }
        // A type this SDK does not know yet: count it as large as a string of its debug form.
        _ => format!("{value:?}").len(),
    }
}

/// One byte per two significant digits, plus one (leading and trailing zeros do not count).
fn number_size(n: &str) -> usize {
    let digits: String = n
        .chars()
        .take_while(|c| !matches!(c, 'e' | 'E'))
        .filter(char::is_ascii_digit)
        .collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.max(1).div_ceil(2) + 1
}

/// The longest prefix of `text` of at most `max_bytes` bytes that ends on a character boundary.
pub fn cut_at_char_boundary(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    #[test]
    fn names_and_values_both_count() {
        let item = HashMap::from([
            ("pk".to_owned(), s("GRP#u1")),
            ("message".to_owned(), s("héllo")),
        ]);
        assert_eq!(item_size(&item), 2 + 6 + 7 + 6);
    }

    #[test]
    fn numbers_count_significant_digits() {
        assert_eq!(value_size(&AttributeValue::N("0".into())), 2);
        assert_eq!(value_size(&AttributeValue::N("12345".into())), 4);
        assert_eq!(value_size(&AttributeValue::N("-1.500".into())), 2);
        assert_eq!(value_size(&AttributeValue::N("1000000".into())), 2);
    }

    #[test]
    fn containers_add_their_overhead() {
        let list = AttributeValue::L(vec![s("ab"), AttributeValue::Bool(true)]);
        assert_eq!(value_size(&list), 3 + (1 + 2) + (1 + 1));
        let map = AttributeValue::M(HashMap::from([("k".to_owned(), s("v"))]));
        assert_eq!(value_size(&map), 3 + 1 + 1 + 1);
    }

    #[test]
    fn cut_never_splits_a_character() {
        assert_eq!(cut_at_char_boundary("héllo", 2), "h");
        assert_eq!(cut_at_char_boundary("héllo", 3), "hé");
        assert_eq!(cut_at_char_boundary("hi", 10), "hi");
        assert_eq!(cut_at_char_boundary("€", 2), "");
    }
}
