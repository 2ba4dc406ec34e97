//! Bringing one group's rows up to the newest message a batch carries for it.
//!
//! Query the group's rows, plan the moves, move them in transactions, and recover from the races
//! a stream consumer meets: a condition failure (another invocation moved the row first, or the
//! GSI was stale) re-reads that row consistently and plans it again; a conflicting transaction is
//! retried after a back-off. Both are bounded by [`Config`]. Throttling and 5xx are retried by the
//! SDK first; only what outlasts its attempts reaches here, as a failed group.

use crate::config::Config;
use crate::plan::{self, GroupRow, GroupUpdate, MAX_ROWS_PER_TRANSACTION};
use crate::store::{CancelReason, MoveOutcome, Store, StoreError};
use std::time::Duration;

/// What happened to one group's rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupOutcome {
    pub moved: usize,
    /// Rows already at or past the message (replays, out-of-order records, lost races).
    pub current: usize,
    /// Rows that disappeared between the query and the move (deleted conversations).
    pub gone: usize,
    /// Transactions retried after a conflict or throttling of an item.
    pub conflict_retries: u32,
    /// Rows re-read after a failed condition.
    pub rereads: u32,
    /// The `pk` (`GRP#<owner>`) of every row that holds this group's message because of it: moved
    /// now, or found already at its instant (an earlier delivery moved it, and its cache
    /// invalidation may have failed: the retry must invalidate again).
    pub changed_owners: Vec<String>,
}

impl std::ops::AddAssign for GroupOutcome {
    fn add_assign(&mut self, other: Self) {
        self.moved += other.moved;
        self.current += other.current;
        self.gone += other.gone;
        self.conflict_retries += other.conflict_retries;
        self.rereads += other.rereads;
        self.changed_owners.extend(other.changed_owners);
    }
}

/// Why a group could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("group {group}: row {pk} still failed its condition after {attempts} re-reads")]
    ConditionRetriesExhausted {
        group: String,
        pk: String,
        attempts: u32,
    },
    #[error("group {group}: transaction still conflicting after {attempts} retries")]
    ConflictRetriesExhausted { group: String, attempts: u32 },
    #[error("the invocation's deadline came before the group was done")]
    DeadlineReached,
    #[error("group {group}: transaction cancelled: {reason}")]
    Cancelled { group: String, reason: String },
    #[error("group {group}: {source}")]
    CacheInvalidation {
        group: String,
        source: crate::cache::CacheError,
    },
}

/// Moves every row of `update.group_uuid` that is older than the update.
pub async fn apply_group(
    store: &Store,
    config: &Config,
    update: &GroupUpdate,
) -> Result<GroupOutcome, GroupError> {
    let rows = store.group_rows(&update.group_uuid).await?;
    move_rows(store, config, update, rows).await
}

/// Plans and moves `rows` as read (possibly stale), recovering from the races described above.
pub async fn move_rows(
    store: &Store,
    config: &Config,
    update: &GroupUpdate,
    rows: Vec<GroupRow>,
) -> Result<GroupOutcome, GroupError> {
    let at_message = rows
        .iter()
        .filter(|row| crate::timestamp::compare(&row.sk, &update.created_at).is_eq())
        .map(|row| row.pk.clone())
        .collect();
    let plan = plan::plan_group(rows, update);
    let mut outcome = GroupOutcome {
        current: plan.current,
        changed_owners: at_message,
        ..GroupOutcome::default()
    };
    // A group chat of more than 50 rows needs several transactions; they touch different rows, so
    // they run at once: one round trip for the group, not one per 50 rows. Each is atomic alone,
    // so one failing leaves the others' moves in place, and the retry finishes the rest.
    let chunks = plan
        .moves
        .chunks(MAX_ROWS_PER_TRANSACTION)
        .map(|chunk| async move {
            let mut chunk_outcome = GroupOutcome::default();
            move_chunk(store, config, update, chunk.to_vec(), &mut chunk_outcome)
                .await
                .map(|()| chunk_outcome)
        });
    for result in futures::future::join_all(chunks).await {
        outcome += result?;
    }
    Ok(outcome)
}

async fn move_chunk(
    store: &Store,
    config: &Config,
    update: &GroupUpdate,
    mut rows: Vec<GroupRow>,
    outcome: &mut GroupOutcome,
) -> Result<(), GroupError> {
    let mut condition_attempts = 0;
    let mut conflict_attempts = 0;
    while !rows.is_empty() {
        let reasons = match store.move_rows(&rows, update).await? {
            MoveOutcome::Moved => {
                outcome.moved += rows.len();
                outcome
                    .changed_owners
                    .extend(rows.iter().map(|row| row.pk.clone()));
                return Ok(());
            }
            MoveOutcome::Cancelled(reasons) => reasons,
        };
        if let Some(CancelReason::Other(code)) = reasons
            .iter()
            .flatten()
            .find(|r| matches!(r, CancelReason::Other(_)))
        {
            return Err(GroupError::Cancelled {
                group: update.group_uuid.clone(),
                reason: code.clone(),
            });
        }
        // Without reasons we cannot tell which row lost its race: re-read them all.
        let suspects: Vec<usize> = if reasons.is_empty() {
            (0..rows.len()).collect()
        } else {
            (0..rows.len())
                .filter(|&i| reasons[i] == Some(CancelReason::Condition))
                .collect()
        };
        if suspects.is_empty() {
            conflict_attempts += 1;
            if conflict_attempts > config.conflict_retries {
                return Err(GroupError::ConflictRetriesExhausted {
                    group: update.group_uuid.clone(),
                    attempts: config.conflict_retries,
                });
            }
            outcome.conflict_retries += 1;
            tokio::time::sleep(backoff(conflict_attempts)).await;
            continue;
        }
        condition_attempts += 1;
        if condition_attempts > config.condition_retries {
            return Err(GroupError::ConditionRetriesExhausted {
                group: update.group_uuid.clone(),
                pk: rows[suspects[0]].pk.clone(),
                attempts: config.condition_retries,
            });
        }
        // Re-read each suspect and keep it only if it still needs to move; the others retry as they are.
        for &i in suspects.iter().rev() {
            outcome.rereads += 1;
            match store.owner_row(&rows[i].pk, &update.group_uuid).await? {
                Some(fresh) if plan::needs_move(&fresh.sk, update) => rows[i] = fresh,
                Some(fresh) => {
                    if crate::timestamp::compare(&fresh.sk, &update.created_at).is_eq() {
                        outcome.changed_owners.push(fresh.pk);
                    }
                    outcome.current += 1;
                    rows.remove(i);
                }
                None => {
                    outcome.gone += 1;
                    rows.remove(i);
                }
            }
        }
    }
    Ok(())
}

/// Exponential back-off with full jitter: 0..(25 ms * 2^attempt), capped at 1 s.
fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = (25u64 << attempt.min(6)).min(1_000);
    Duration::from_millis(fastrand::u64(0..=ceiling_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded() {
        for attempt in 0..40 {
            assert!(backoff(attempt) <= Duration::from_secs(1));
        }
    }
}
