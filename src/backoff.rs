//! The one back-off between our own retries (apply's lost conflicts, the cache's unprocessed
//! deletes): the SDK's retry config covers single requests, not these rounds of several.

use std::time::Duration;

/// Equal jitter: between half and all of a ceiling that doubles from 25 ms per attempt up to 1 s,
/// so a retry never comes back at once and never waits long inside a Lambda invocation.
pub fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = (25u64 << attempt.min(6)).min(1_000);
    Duration::from_millis(fastrand::u64(ceiling_ms / 2..=ceiling_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded() {
        // (first attempt, last attempt, shortest and longest wait in ms)
        let bounds = [
            (0, 0, 12, 25),
            (1, 1, 25, 50),
            (2, 2, 50, 100),
            (3, 3, 100, 200),
            (4, 4, 200, 400),
            (5, 5, 400, 800),
            (6, 39, 500, 1_000),
        ];
        for (first, last, shortest, longest) in bounds {
            for attempt in first..=last {
                for _ in 0..200 {
                    let waited = backoff(attempt).as_millis() as u64;
                    assert!(
                        (shortest..=longest).contains(&waited),
                        "attempt {attempt}: {waited} ms, not in {shortest}..={longest}"
                    );
                }
            }
        }
    }
}
