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

/// The timestamp `micros` microseconds after `raw`, written in `raw`'s own form: the same date-time
/// separator and offset suffix (`Z`, `+05:30` or none), with at least six fraction digits (more if
/// `raw` had more), so it names the instant the app shows to within a millisecond for
/// `micros < 1000`. `None` when `raw` is not a timestamp (there is no instant to count from).
pub fn nudge(raw: &str, micros: u32) -> Option<String> {
    parse_instant(raw)?;
    let raw = raw.trim();
    let (body, suffix) = match raw.rfind(['Z', 'z', '+', '-']) {
        // A suffix starts after the time of day (index 19 is just past `HH:MM:SS`).
        Some(at) if at >= 19 => raw.split_at(at),
        _ => (raw, ""),
    };
    let separator = body.get(10..11)?;
    let fraction_digits = body.find('.').map_or(0, |dot| body.len() - dot - 1);
    if fraction_digits > 9 {
        return None;
    }
    let local = NaiveDateTime::parse_from_str(
        &format!("{}T{}", body.get(..10)?, body.get(11..)?),
        "%Y-%m-%dT%H:%M:%S%.f",
    )
    .ok()?
    .checked_add_signed(chrono::TimeDelta::microseconds(i64::from(micros)))?;
    let digits = fraction_digits.max(6);
    let fraction =
        (local.and_utc().timestamp_subsec_nanos() % 1_000_000_000) / 10u32.pow(9 - digits as u32);
    Some(format!(
        "{}{separator}{}.{fraction:0digits$}{suffix}",
        local.format("%Y-%m-%d"),
        local.format("%H:%M:%S"),
    ))
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
    fn nudge_keeps_the_form_and_adds_microseconds() {
        let cases = [
            (
                "2023-03-25T18:11:15.897345+00:00",
                1,
                "2023-03-25T18:11:15.897346+00:00",
            ),
            (
                "2023-03-25T18:11:15+00:00",
                1,
                "2023-03-25T18:11:15.000001+00:00",
            ),
            (
                "2023-03-25T18:11:15.897345",
                2,
                "2023-03-25T18:11:15.897347",
            ),
            ("2023-03-25 18:11:15", 1, "2023-03-25 18:11:15.000001"),
            ("2023-03-25T18:11:15.5Z", 1, "2023-03-25T18:11:15.500001Z"),
            (
                "2023-03-25T23:59:59.999999-05:30",
                1,
                "2023-03-26T00:00:00.000000-05:30",
            ),
            (
                "2023-03-25T18:11:15.123456789+00:00",
                1,
                "2023-03-25T18:11:15.123457789+00:00",
            ),
        ];
        for (raw, micros, expected) in cases {
            let nudged = nudge(raw, micros).unwrap();
            assert_eq!(nudged, expected, "{raw} + {micros} us");
            let gap = parse_instant(&nudged).unwrap() - parse_instant(raw).unwrap();
            assert_eq!(
                gap,
                chrono::TimeDelta::microseconds(i64::from(micros)),
                "{raw}"
            );
        }
    }

    #[test]
    fn nudge_of_a_non_timestamp_is_none() {
        assert_eq!(nudge("not a time", 1), None);
        assert_eq!(nudge("", 1), None);
        assert_eq!(nudge("2023-03-25T18:11:15.1234567891+00:00", 1), None);
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
