//! Ordering of Cruddur timestamps by the instant they name.
//!
//! Real data mixes ISO-8601 forms: with an offset (`2023-03-25T18:11:15.897345+00:00`), naive
//! (`2023-03-25T18:11:15.897345`, meaning UTC), with or without fractional seconds. Comparing the
//! strings would put `...15+00:00` after `...15.5` and an offset of `+05:30` anywhere, so we compare
//! instants. A value that does not parse sorts before every timestamp (and among its kind by
//! string): the order stays total, so no chain of comparisons can move a row backwards.

use chrono::{DateTime, NaiveDateTime, Utc};
use std::cmp::Ordering;

/// Parses a Cruddur timestamp to the instant it names; `None` when it is not one of the known forms.
pub fn parse_instant(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(with_offset) = DateTime::parse_from_rfc3339(raw) {
        return Some(with_offset.with_timezone(&Utc));
    }
    // Python's `datetime.isoformat()` of a naive value; both separators occur in the wild.
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(raw, format).ok())
        .map(|naive| naive.and_utc())
}

/// Compares two timestamps by instant; equal instants written differently compare `Equal`.
///
/// A value that does not parse is older than any that does, and two such values compare as
/// strings. (Comparing strings whenever either side failed to parse was not transitive: with
/// `a` = `...T23:00+05:30` (17:30 UTC), `b` = `...T20:00 garbage`, `c` = `...T18:00`, a < c by
/// instant but c < b < a by string, so a garbage message could walk a row back in time; and a
/// garbage sort key such as `not a time` sorted after every real one and froze the row.)
pub fn compare(a: &str, b: &str) -> Ordering {
    match (parse_instant(a), parse_instant(b)) {
        (Some(a), Some(b)) => a.cmp(&b),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// True when `candidate` names a strictly later instant than `current`.
pub fn is_newer(candidate: &str, current: &str) -> bool {
    compare(candidate, current) == Ordering::Greater
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_means_utc() {
        assert_eq!(
            compare(
                "2023-03-25T18:11:15.897345",
                "2023-03-25T18:11:15.897345+00:00"
            ),
            Ordering::Equal
        );
    }

    #[test]
    fn orders_by_instant_not_by_string() {
        // As strings, "15+00:00" > "15.5": the instant says the opposite.
        assert!(is_newer(
            "2023-03-25T18:11:15.5",
            "2023-03-25T18:11:15+00:00"
        ));
        // An offset moves the instant: 23:00+05:30 is 17:30 UTC, before 18:00 naive.
        assert!(is_newer("2023-03-25T18:00:00", "2023-03-25T23:00:00+05:30"));
        assert!(!is_newer(
            "2023-03-25T23:00:00+05:30",
            "2023-03-25T18:00:00"
        ));
        assert!(is_newer(
            "2023-03-25T18:11:16Z",
            "2023-03-25T18:11:15.999999+00:00"
        ));
    }

    #[test]
    fn accepts_space_separator_and_missing_fraction() {
        assert_eq!(
            parse_instant("2023-03-25 18:11:15"),
            parse_instant("2023-03-25T18:11:15.000+00:00")
        );
        assert!(parse_instant("2023-03-25T18:11:15").is_some());
    }

    #[test]
    fn unparseable_values_sort_before_every_timestamp() {
        assert_eq!(parse_instant("not a time"), None);
        assert_eq!(compare("b-garbage", "a-garbage"), Ordering::Greater);
        assert_eq!(compare("2023-03-25T18:11:15", "zzz"), Ordering::Greater);
        assert!(!is_newer("not a time", "2023-03-25T18:11:15"));
        assert!(!is_newer("same", "same"));
    }
}
