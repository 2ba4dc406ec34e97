//! The counts of one batch: what the handler logs in its summary line, what the metrics document
//! reports, and what `ddb replay` and `ddb redrive` read. The fold of each group's result into them
//! lives here too, so that a count is added in one place.

use crate::apply::{GroupError, GroupOutcome, RowOutcome};
use crate::aws::Setup;

/// Counts for the one summary line each invocation logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub records: usize,
    pub relevant: usize,
    pub ignored: usize,
    pub malformed: usize,
    pub groups: usize,
    pub rows_moved: usize,
    pub rows_edited: usize,
    pub rows_fallen_back: usize,
    pub rows_nudged: usize,
    pub rows_truncated: usize,
    pub rows_current: usize,
    pub rows_gone: usize,
    pub condition_rereads: usize,
    pub conflict_retries: usize,
    pub failed_groups: usize,
    /// Why each failed group failed, `Kind: group <id>: ...` (ids and error kinds only, never
    /// message text): `ddb redrive` reports them, `ddb watch` puts them in its failures file.
    pub group_errors: Vec<String>,
    /// The set-up problem behind each failed group that met one (unreachable, credentials, a
    /// missing table or index): no record is at fault. `ddb replay` exits 1 on it, not 3.
    pub setup_errors: Vec<Setup>,
    /// The groups that failed, by id.
    pub failed_group_ids: Vec<String>,
    /// Each row's result (group, owner partition, result: never text), the counts above row by row:
    /// `ddb redrive` counts rows over several invocations without counting one row twice.
    pub rows: Vec<RowOutcome>,
}

impl Summary {
    /// Adds a group brought up to date: its row counts and its rows.
    pub fn add_group(&mut self, outcome: GroupOutcome) {
        let GroupOutcome {
            moved,
            edited,
            fallen_back,
            nudged,
            truncated,
            current,
            gone,
            conflict_retries,
            rereads,
            changed_owners: _,
            rows,
        } = outcome;
        self.rows.extend(rows);
        self.rows_moved += moved;
        self.rows_edited += edited;
        self.rows_fallen_back += fallen_back;
        self.rows_nudged += nudged;
        self.rows_truncated += truncated;
        self.rows_current += current;
        self.rows_gone += gone;
        self.condition_rereads += rereads as usize;
        self.conflict_retries += conflict_retries as usize;
    }

    /// Adds a group that failed: its id, why (kind and ids, never text), and any set-up problem.
    pub fn add_failed_group(&mut self, group_uuid: &str, error: &GroupError) {
        self.failed_groups += 1;
        self.group_errors.push(format!("{}: {error}", error.kind()));
        self.setup_errors.extend(error.setup());
        self.failed_group_ids.push(group_uuid.to_owned());
    }
}
