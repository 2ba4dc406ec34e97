//! AWS's published on-demand rates the bench turns its counts into dollars with, in one place.
//!
//! us-east-1, read from third-party copies of AWS's pricing pages (this machine cannot reach
//! aws.amazon.com/pricing): ElastiCache Serverless for Valkey's as a copy dated June 2026 gives them,
//! DynamoDB on-demand's as they stand since AWS halved them in November 2024
//! (../shared/notes/toolchain.md has the same figures).
//! Check them before relying on a figure priced here: rates change.

/// When the rates below were read, for the tables that quote them.
pub const AS_OF: &str =
    "us-east-1, AWS's published rates: ElastiCache's as of June 2026, DynamoDB's since November 2024";

/// DynamoDB on-demand: dollars per read request unit ($0.125 per million).
pub const READ_UNIT: f64 = 0.125e-6;
/// DynamoDB on-demand: dollars per write request unit ($0.625 per million).
pub const WRITE_UNIT: f64 = 0.625e-6;
/// ElastiCache Serverless for Valkey: dollars per ECPU ($0.0023 per million).
pub const ECPU: f64 = 0.0023e-6;
/// ElastiCache Serverless for Valkey: dollars per GB-hour of data stored.
pub const VALKEY_GB_HOUR: f64 = 0.084;
/// ...billed for at least this much data, however little is stored.
pub const VALKEY_MINIMUM_GB: f64 = 0.1;
/// Hours in AWS's billing month.
pub const HOURS_PER_MONTH: f64 = 730.0;

/// ECPUs of `round_trips` simple commands carrying `bytes` in all: one per KB transferred, at least
/// one per command. Scripts may cost more (ECPUs also meter vCPU time), which bytes cannot show.
pub fn ecpus(round_trips: f64, bytes: f64) -> f64 {
    (bytes / 1024.0).max(round_trips)
}

/// What one operation of these units costs, in dollars per million operations.
pub fn per_million(read_units: f64, write_units: f64, ecpus: f64) -> f64 {
    1e6 * (read_units * READ_UNIT + write_units * WRITE_UNIT + ecpus * ECPU)
}

/// The Valkey cache's monthly floor: its minimum of stored data, billed whatever the traffic.
pub fn valkey_floor_per_month() -> f64 {
    VALKEY_MINIMUM_GB * VALKEY_GB_HOUR * HOURS_PER_MONTH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_unit_a_million_times_is_the_published_rate() {
        assert!((per_million(1.0, 0.0, 0.0) - 0.125).abs() < 1e-12);
        assert!((per_million(0.0, 2.0, 0.0) - 1.25).abs() < 1e-12);
        assert!((per_million(0.0, 0.0, 1.0) - 0.0023).abs() < 1e-12);
    }

    #[test]
    fn ecpus_are_kilobytes_but_at_least_one_a_command() {
        assert_eq!(ecpus(1.0, 100.0), 1.0);
        assert_eq!(ecpus(1.0, 4608.0), 4.5);
        assert_eq!(ecpus(3.0, 2048.0), 3.0);
    }

    #[test]
    fn the_floor_is_a_tenth_of_a_gigabyte_all_month() {
        assert!((valkey_floor_per_month() - 6.132).abs() < 1e-9);
    }
}
