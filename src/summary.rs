//! What one batch came to: its counts (src/counts.rs), the failures and the rows behind them, and
//! the fold of each group's result into them. The handler builds it; the metrics document, `ddb
//! replay` and `ddb redrive` read it.

use crate::apply::{GroupError, GroupOutcome, RowOutcome};
use crate::aws::Setup;
use crate::counts::Counts;

/// What one invocation came to: the counts its summary line logs and its metrics carry, and the
/// failures and rows behind them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Every count of the batch (src/counts.rs).
    pub counts: Counts,
    /// Why each failed group failed, `Kind: group <id>: ...` (ids and error kinds only, never
    /// message text): `ddb redrive` reports them, `ddb watch` puts them in its failures file.
    pub group_errors: Vec<String>,
    /// The set-up problem behind each failed group that met one (unreachable, credentials, a
    /// missing table or index): no record is at fault. `ddb replay` exits 1 on it, not 3.
    pub setup_errors: Vec<Setup>,
    /// The groups that failed, by id.
    pub failed_group_ids: Vec<String>,
    /// Each row's result (group, owner partition, result: never text), the row counts row by row:
    /// `ddb redrive` counts rows over several invocations without counting one row twice.
    pub rows: Vec<RowOutcome>,
}

impl Summary {
    /// Adds a group brought up to date: its counts and its rows.
    pub fn add_group(&mut self, outcome: GroupOutcome) {
        let GroupOutcome { counts, rows, .. } = outcome;
        self.counts += counts;
        self.rows.extend(rows);
    }

    /// Adds a group that failed: its id, why (kind and ids, never text), and any set-up problem.
    pub fn add_failed_group(&mut self, group_uuid: &str, error: &GroupError) {
        self.counts.failed_groups += 1;
        self.group_errors.push(format!("{}: {error}", error.kind()));
        self.setup_errors.extend(error.setup());
        self.failed_group_ids.push(group_uuid.to_owned());
    }
}
