//! Bringing one group's rows to what a batch leaves the group at.
//!
//! Query the group's rows, plan each one ([`plan::plan_row`]), read the group's newest remaining
//! message once if a row previews a removed one, write in transactions cut by DynamoDB's limits,
//! and recover from what a stream consumer meets: a failed condition on a row's old key (another
//! invocation wrote it first, or the GSI was stale) re-reads that row consistently and plans it
//! again; a new key held by another conversation of the owner (two conversations with a message
//! at the same instant) takes the next free microsecond; a conflicting transaction is retried
//! after a back-off. All bounded by [`Config`]. Throttling and 5xx are retried by the SDK first;
//! only what outlasts its attempts reaches here, as a failed group.

use crate::aws::Setup;
use crate::backoff::backoff;
use crate::config::Config;
use crate::counts::Counts;
use crate::plan::{self, Fallback, GroupRow, GroupUpdate, RowPlan, RowWrite, WriteReason};
use crate::store::{RowFailure, Store, StoreError, WriteOutcome};
use crate::timestamp;
use tokio::sync::OnceCell;

/// How far past a message's instant a nudged row may go: 999 microseconds, so it still names the
/// instant the app shows to the millisecond.
pub const MAX_NUDGE_MICROS: u32 = 999;
/// Rounds of finding a free key for a row whose new key was taken again in the meantime.
const MAX_NUDGE_ROUNDS: u32 = 5;

/// What one row came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowResult {
    Moved,
    Edited,
    FellBack,
    /// Already what the batch leaves it at: nothing written.
    Current,
    /// Disappeared between the query and the write.
    Gone,
}

/// One row's result, named by its group and owner partition (`GRP#<owner>`): who made it, not what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowOutcome {
    pub group: String,
    pub pk: String,
    pub result: RowResult,
}

/// What happened to one group's rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupOutcome {
    /// The group's row counts (moved, edited, fell back, nudged, truncated, current, gone) and its
    /// condition re-reads and conflict retries.
    pub counts: Counts,
    /// The `pk` (`GRP#<owner>`) of every row whose owner's list may show this batch's change: the
    /// rows written, and the rows found already showing it (an earlier delivery wrote them, and
    /// whatever followed that write, such as a cache invalidation, may have failed: the retry must
    /// do it again). After a REMOVE, every row of the group: a row that fell back earlier cannot be
    /// told apart, and the removed text must not stay anywhere.
    pub changed_owners: Vec<String>,
    /// Each row's result, in the order they were settled (the row counts, row by row).
    pub rows: Vec<RowOutcome>,
}

impl RowResult {
    /// The count a row with this result adds to.
    pub fn count(self, counts: &mut Counts) {
        *match self {
            Self::Moved => &mut counts.rows_moved,
            Self::Edited => &mut counts.rows_edited,
            Self::FellBack => &mut counts.rows_fallen_back,
            Self::Current => &mut counts.rows_current,
            Self::Gone => &mut counts.rows_gone,
        } += 1;
    }
}

impl GroupOutcome {
    fn row(&mut self, update: &GroupUpdate, pk: &str, result: RowResult) {
        result.count(&mut self.counts);
        self.rows.push(RowOutcome {
            group: update.group_uuid.clone(),
            pk: pk.to_owned(),
            result,
        });
    }

    fn written(&mut self, write: &RowWrite, update: &GroupUpdate) {
        let result = match write.reason {
            WriteReason::Newer => RowResult::Moved,
            WriteReason::Edited => RowResult::Edited,
            WriteReason::Removed => RowResult::FellBack,
        };
        self.row(update, &write.row.pk, result);
        self.counts.rows_nudged += usize::from(write.nudged());
        self.counts.rows_truncated += usize::from(write.truncated);
        self.changed_owners.push(write.row.pk.clone());
    }

    /// A row already what the batch leaves it at.
    fn current(&mut self, row: &GroupRow, update: &GroupUpdate) {
        self.row(update, &row.pk, RowResult::Current);
        let shows_latest = update
            .latest
            .as_ref()
            .is_some_and(|latest| latest.sk == row.previewed_sk());
        if shows_latest || !update.removed.is_empty() {
            self.changed_owners.push(row.pk.clone());
        }
    }
}

impl std::ops::AddAssign for GroupOutcome {
    fn add_assign(&mut self, other: Self) {
        self.counts += other.counts;
        self.changed_owners.extend(other.changed_owners);
        self.rows.extend(other.rows);
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
    #[error("group {group}: the invocation's deadline came before the group was done")]
    DeadlineReached { group: String },
    #[error("group {group}: transaction cancelled: {reason}")]
    Cancelled { group: String, reason: String },
    #[error("group {group}: {source}")]
    CacheInvalidation {
        group: String,
        source: crate::cache::CacheError,
    },
    #[error("group {group}: no free sort key for {pk} within {MAX_NUDGE_MICROS} us of {at:?}")]
    NoFreeKey {
        group: String,
        pk: String,
        at: String,
    },
}

impl GroupError {
    /// The set-up problem (unreachable, credentials, a missing table or index) that failed the
    /// group, if it was one rather than anything about its records.
    pub fn setup(&self) -> Option<Setup> {
        match self {
            Self::Store(error) => error.setup(),
            Self::CacheInvalidation { source, .. } => source.setup().map(|setup| match setup {
                Setup::MissingTable => Setup::MissingCacheTable,
                other => other,
            }),
            _ => None,
        }
    }

    /// The kind of failure, one word, for reports that carry the reason on (the failures file of
    /// `ddb watch`, `ddb redrive`); every variant's message names the group and ids only, never text.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Store(StoreError::QueryGroup { .. }) => "QueryGroupFailed",
            Self::Store(StoreError::ReadOwner { .. }) => "ReadOwnerFailed",
            Self::Store(StoreError::ReadMessages { .. }) => "ReadMessagesFailed",
            Self::Store(StoreError::Transaction { .. }) => "TransactionFailed",
            Self::ConditionRetriesExhausted { .. } => "ConditionRetriesExhausted",
            Self::ConflictRetriesExhausted { .. } => "ConflictRetriesExhausted",
            Self::DeadlineReached { .. } => "DeadlineReached",
            Self::Cancelled { .. } => "Cancelled",
            Self::CacheInvalidation { .. } => "CacheInvalidation",
            Self::NoFreeKey { .. } => "NoFreeKey",
        }
    }
}

/// Brings every row of `update.group_uuid` to what the batch leaves the group at.
pub async fn apply_group(
    store: &Store,
    config: &Config,
    update: &GroupUpdate,
) -> Result<GroupOutcome, GroupError> {
    let rows = store.group_rows(&update.group_uuid).await?;
    move_rows(store, config, update, rows).await
}

/// Plans and writes `rows` as read (possibly stale), recovering from the races described above.
pub async fn move_rows(
    store: &Store,
    config: &Config,
    update: &GroupUpdate,
    rows: Vec<GroupRow>,
) -> Result<GroupOutcome, GroupError> {
    let group = Group {
        store,
        config,
        update,
        fallback: OnceCell::new(),
    };
    let (rows, _shadowed) = plan::one_per_owner(rows);
    let mut outcome = GroupOutcome::default();
    let mut writes = Vec::with_capacity(rows.len());
    for row in &rows {
        match group.plan(row).await? {
            RowPlan::Write(write) => writes.push(write),
            _ => outcome.current(row, update),
        }
    }
    // A large group chat needs several transactions; they touch different rows, so they run at
    // once: one round trip for the group, not one per transaction. Each is atomic alone, so one
    // failing leaves the others' writes in place, and the retry finishes the rest.
    let chunks = plan::transactions(writes).into_iter().map(|chunk| {
        let group = &group;
        async move {
            let mut chunk_outcome = GroupOutcome::default();
            group
                .write_chunk(chunk, &mut chunk_outcome)
                .await
                .map(|()| chunk_outcome)
        }
    });
    for result in futures::future::join_all(chunks).await {
        outcome += result?;
    }
    Ok(outcome)
}

/// One group's work in progress: what it reads at most once is kept here.
struct Group<'a> {
    store: &'a Store,
    config: &'a Config,
    update: &'a GroupUpdate,
    /// The group's newest remaining message, read only if a row previews a removed one.
    fallback: OnceCell<Fallback>,
}

/// Where a row whose new key was taken can go.
enum KeyChoice {
    Free(String),
    /// The group's own row holds one of the keys: re-read it.
    OwnRow,
}

impl Group<'_> {
    async fn plan(&self, row: &GroupRow) -> Result<RowPlan, StoreError> {
        let cap = self.config.preview_max_bytes;
        match plan::plan_row(row, self.update, self.fallback.get(), cap) {
            RowPlan::NeedsFallback => {
                let fallback = self
                    .fallback
                    .get_or_try_init(|| self.store.newest_message(&self.update.group_uuid))
                    .await?;
                Ok(plan::plan_row(row, self.update, Some(fallback), cap))
            }
            plan => Ok(plan),
        }
    }

    /// The first key from the message's own to [`MAX_NUDGE_MICROS`] after it that the owner does
    /// not hold, from one consistent read of that range.
    async fn free_key(&self, write: &RowWrite) -> Result<KeyChoice, GroupError> {
        let at = &write.message_sk;
        let no_free_key = || GroupError::NoFreeKey {
            group: self.update.group_uuid.clone(),
            pk: write.row.pk.clone(),
            at: at.clone(),
        };
        let candidates: Vec<String> = std::iter::once(Some(at.clone()))
            .chain((1..=MAX_NUDGE_MICROS).map(|micros| timestamp::nudge(at, micros)))
            .collect::<Option<_>>()
            .ok_or_else(no_free_key)?;
        let low = candidates.iter().min().expect("not empty");
        let high = candidates.iter().max().expect("not empty");
        let taken: std::collections::HashMap<String, Option<String>> = self
            .store
            .owner_keys_between(&write.row.pk, low, high, &self.update.group_uuid)
            .await?
            .into_iter()
            .collect();
        let ours = Some(&self.update.group_uuid);
        if candidates
            .iter()
            .any(|key| taken.get(key).is_some_and(|holder| holder.as_ref() == ours))
        {
            return Ok(KeyChoice::OwnRow);
        }
        candidates
            .into_iter()
            .find(|key| !taken.contains_key(key))
            .map(KeyChoice::Free)
            .ok_or_else(no_free_key)
    }

    async fn write_chunk(
        &self,
        mut rows: Vec<RowWrite>,
        outcome: &mut GroupOutcome,
    ) -> Result<(), GroupError> {
        let group = &self.update.group_uuid;
        let (mut condition_attempts, mut conflict_attempts, mut nudge_rounds) = (0, 0, 0);
        while !rows.is_empty() {
            let failures = match self.store.write_rows(&rows, group).await? {
                WriteOutcome::Written => {
                    rows.iter()
                        .for_each(|write| outcome.written(write, self.update));
                    return Ok(());
                }
                WriteOutcome::Cancelled(failures) => failures,
            };
            if let Some(RowFailure::Other(code)) = failures
                .iter()
                .flatten()
                .find(|f| matches!(f, RowFailure::Other(_)))
            {
                return Err(GroupError::Cancelled {
                    group: group.clone(),
                    reason: code.clone(),
                });
            }
            // Without reasons we cannot tell which row lost its race: re-read them all.
            let failures = if failures.is_empty() {
                vec![Some(RowFailure::OldKey); rows.len()]
            } else {
                failures
            };
            let stuck: Vec<usize> = (0..rows.len())
                .filter(|&i| {
                    matches!(
                        failures[i],
                        Some(RowFailure::OldKey | RowFailure::NewKeyTaken)
                    )
                })
                .collect();
            if stuck.is_empty() {
                conflict_attempts += 1;
                if conflict_attempts > self.config.conflict_retries {
                    return Err(GroupError::ConflictRetriesExhausted {
                        group: group.clone(),
                        attempts: self.config.conflict_retries,
                    });
                }
                outcome.counts.conflict_retries += 1;
                tokio::time::sleep(backoff(conflict_attempts)).await;
                continue;
            }
            let mut choices = Vec::with_capacity(stuck.len());
            for &i in &stuck {
                choices.push(match failures[i] {
                    Some(RowFailure::NewKeyTaken) => self.free_key(&rows[i]).await?,
                    _ => KeyChoice::OwnRow,
                });
            }
            if choices.iter().any(|c| matches!(c, KeyChoice::OwnRow)) {
                condition_attempts += 1;
                if condition_attempts > self.config.condition_retries {
                    let i = stuck[choices
                        .iter()
                        .position(|c| matches!(c, KeyChoice::OwnRow))
                        .unwrap_or(0)];
                    return Err(GroupError::ConditionRetriesExhausted {
                        group: group.clone(),
                        pk: rows[i].row.pk.clone(),
                        attempts: self.config.condition_retries,
                    });
                }
            }
            if choices.iter().any(|c| matches!(c, KeyChoice::Free(_))) {
                nudge_rounds += 1;
                if nudge_rounds > MAX_NUDGE_ROUNDS {
                    let i = stuck[0];
                    return Err(GroupError::NoFreeKey {
                        group: group.clone(),
                        pk: rows[i].row.pk.clone(),
                        at: rows[i].message_sk.clone(),
                    });
                }
            }
            // Back to front, so that removing a row keeps the other indices valid.
            for (&i, choice) in stuck.iter().zip(choices).rev() {
                match choice {
                    KeyChoice::Free(key) => rows[i] = rows[i].clone().to_key(&key),
                    KeyChoice::OwnRow => {
                        outcome.counts.condition_rereads += 1;
                        match self.store.owner_row(&rows[i].row.pk, group).await? {
                            Some(fresh) => match self.plan(&fresh).await? {
                                RowPlan::Write(write) => rows[i] = write,
                                _ => {
                                    outcome.current(&fresh, self.update);
                                    rows.remove(i);
                                }
                            },
                            None => {
                                outcome.row(self.update, &rows[i].row.pk, RowResult::Gone);
                                rows.remove(i);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod mocked;
