//! `ddb redrive`: running failed batches through the function's handler again.
//!
//! Takes failure records (`failure_records`), gets each one's stream records (the S3 object's
//! payload as it is, or the range read back from the stream by `hydrate`), and runs them through
//! the very handler the Lambda runs, in stream order (failure records sorted by shard and start
//! sequence number), in batches of at most the template's BatchSize. `dry_run` reads and plans
//! (queries the groups' rows, decides what would move) without writing.
//!
//! Redriving twice changes nothing the second time: a row only ever moves forward to a newer
//! message, so records already applied find their rows current. The report counts per failure
//! record; nothing in it or in the logs carries message text.

use crate::event::{self, Parsed};
use crate::event_source_mapping::failure_records::FailureRecord;
use crate::event_source_mapping::hydrate::{self, compare_sequence_numbers};
use crate::handler::{self, App};
use crate::plan;
use serde::Serialize;
use serde_json::{json, Value};
use std::fmt;
use std::path::Path;

/// How to redrive.
#[derive(Debug, Clone)]
pub struct RedriveOptions {
    /// Most records per invocation (the template's BatchSize).
    pub batch_size: usize,
    /// Read and plan only.
    pub dry_run: bool,
}

/// What happened to one failure record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecordReport {
    /// Where the failure record was read (`file:line`).
    pub origin: String,
    pub shape: &'static str,
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    /// Records got for the range (from the payload or the stream).
    pub records_read: usize,
    /// GetRecords pages read from the stream (0 for an S3 object).
    pub stream_pages: u32,
    pub invocations: usize,
    pub relevant: usize,
    /// Rows moved to their group's newest message (with `dry_run`: rows that would move).
    pub rows_applied: usize,
    pub rows_already_current: usize,
    /// Groups still failing, and records that could not be read back (each with its reason).
    pub still_failing: usize,
    pub reasons: Vec<String>,
    pub dry_run: bool,
}

impl RecordReport {
    pub fn failed(&self) -> bool {
        self.still_failing > 0
    }
}

impl fmt::Display for RecordReport {
    /// `file:3 shardId-1 100..105 (metadata): read 6, relevant 4, applied 3, already current 5, still failing 0`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}..{} ({}): read {}, relevant {}, {} {}, already current {}, still failing {}",
            self.origin,
            self.shard_id,
            self.start_sequence_number,
            self.end_sequence_number,
            self.shape,
            self.records_read,
            self.relevant,
            if self.dry_run {
                "would apply"
            } else {
                "applied"
            },
            self.rows_applied,
            self.rows_already_current,
            self.still_failing
        )?;
        for reason in &self.reasons {
            write!(f, "\n  {reason}")?;
        }
        Ok(())
    }
}

/// The template's `BatchSize` parameter default.
#[derive(Debug, thiserror::Error)]
pub enum BatchSizeError {
    #[error("cannot read {path}: {detail} (or pass --batch-size)")]
    Template { path: String, detail: String },
    #[error("{path} has no Parameters.BatchSize.Default number (or pass --batch-size)")]
    Missing { path: String },
}

/// Reads `Parameters.BatchSize.Default` of the SAM template at `path`.
pub fn template_batch_size(path: &Path) -> Result<usize, BatchSizeError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| BatchSizeError::Template {
        path: shown.clone(),
        detail: e.to_string(),
    })?;
    let template: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| BatchSizeError::Template {
            path: shown.clone(),
            detail: e.to_string(),
        })?;
    template
        .get("Parameters")
        .and_then(|p| p.get("BatchSize"))
        .and_then(|p| p.get("Default"))
        .and_then(serde_norway::Value::as_u64)
        .filter(|n| *n > 0)
        .map(|n| n as usize)
        .ok_or(BatchSizeError::Missing { path: shown })
}

/// The table a stream ARN belongs to (`arn:...:table/<name>/stream/<label>`).
fn stream_table(stream_arn: &str) -> Option<&str> {
    let (_, rest) = stream_arn.split_once(":table/")?;
    rest.split_once("/stream/").map(|(table, _)| table)
}

/// Redrives every failure record; the reports come in the order the records ran.
pub async fn redrive(
    app: &App,
    streams: &aws_sdk_dynamodbstreams::Client,
    mut records: Vec<FailureRecord>,
    options: &RedriveOptions,
) -> Vec<RecordReport> {
    records.sort_by(|a, b| {
        (&a.info.stream_arn, &a.info.shard_id)
            .cmp(&(&b.info.stream_arn, &b.info.shard_id))
            .then_with(|| {
                compare_sequence_numbers(
                    &a.info.start_sequence_number,
                    &b.info.start_sequence_number,
                )
            })
    });
    let mut reports = Vec::with_capacity(records.len());
    for record in &records {
        reports.push(redrive_one(app, streams, record, options).await);
    }
    reports
}

async fn redrive_one(
    app: &App,
    streams: &aws_sdk_dynamodbstreams::Client,
    record: &FailureRecord,
    options: &RedriveOptions,
) -> RecordReport {
    let mut report = RecordReport {
        origin: record.origin.clone(),
        shape: record.shape.as_str(),
        shard_id: record.info.shard_id.clone(),
        start_sequence_number: record.info.start_sequence_number.clone(),
        end_sequence_number: record.info.end_sequence_number.clone(),
        dry_run: options.dry_run,
        ..RecordReport::default()
    };
    let fail = |report: &mut RecordReport, reason: String| {
        report.still_failing += 1;
        report.reasons.push(reason);
    };
    let table = app.store.table();
    if let Some(other) = stream_table(&record.info.stream_arn).filter(|t| *t != table) {
        fail(
            &mut report,
            format!("the range is from the stream of table {other}, not of {table}: pass --table {other}"),
        );
        return report;
    }
    // The records themselves when the failure record has them (an S3 object, a `ddb watch`
    // entry); else the range, read back from the stream.
    let lambda_records = match &record.payload {
        Some(payload) => payload.clone(),
        None => match hydrate::hydrate(streams, &record.info).await {
            Ok(hydrated) => {
                report.stream_pages = hydrated.pages;
                hydrated.records
            }
            Err(error) => {
                fail(&mut report, error.to_string());
                return report;
            }
        },
    };
    report.records_read = lambda_records.len();
    if options.dry_run {
        plan_only(app, &lambda_records, &mut report).await;
        return report;
    }
    for batch in lambda_records.chunks(options.batch_size.max(1)) {
        report.invocations += 1;
        let payload = json!({ "Records": batch });
        match handler::process(app, &payload).await {
            Ok((response, summary)) => {
                report.relevant += summary.relevant;
                report.rows_applied += summary.rows_moved;
                report.rows_already_current += summary.rows_current;
                report.still_failing += summary.failed_groups;
                let retry_from = response
                    .batch_item_failures
                    .first()
                    .and_then(|f| f.item_identifier.clone())
                    .unwrap_or_default();
                report.reasons.extend(
                    summary
                        .group_errors
                        .into_iter()
                        .map(|e| format!("{e} (Lambda would retry from {retry_from})")),
                );
            }
            Err(error) => fail(&mut report, format!("invocation error: {error}")),
        }
    }
    report
}

/// `--dry-run`: the groups' changes over the whole range, planned against their rows as they are now.
async fn plan_only(app: &App, records: &[Value], report: &mut RecordReport) {
    let parsed = match event::parse_event(&json!({ "Records": records })) {
        Ok(parsed) => parsed,
        Err(error) => {
            report.still_failing += 1;
            report.reasons.push(error.to_string());
            return;
        }
    };
    let messages: Vec<_> = parsed
        .into_iter()
        .filter_map(|p| match p {
            Parsed::Relevant(message) => Some(message),
            _ => None,
        })
        .collect();
    report.relevant = messages.len();
    for update in plan::coalesce(messages) {
        match plan_group(app, &update).await {
            Ok((writes, current)) => {
                report.rows_applied += writes;
                report.rows_already_current += current;
            }
            Err(error) => {
                report.still_failing += 1;
                report
                    .reasons
                    .push(format!("group {}: {error}", update.group_uuid));
            }
        }
    }
}

/// (rows that would be written, rows already current) for one group, by the handler's own plan
/// (`plan::plan_row`), reading the group's rows and, after a REMOVE, its newest remaining message.
async fn plan_group(
    app: &App,
    update: &plan::GroupUpdate,
) -> Result<(usize, usize), crate::store::StoreError> {
    let (rows, _shadowed) = plan::one_per_owner(app.store.group_rows(&update.group_uuid).await?);
    let cap = app.config.preview_max_bytes;
    let mut fallback = None;
    let (mut writes, mut current) = (0, 0);
    for row in &rows {
        let mut planned = plan::plan_row(row, update, fallback.as_ref(), cap);
        if matches!(planned, plan::RowPlan::NeedsFallback) {
            let found = app.store.newest_message(&update.group_uuid).await?;
            planned = plan::plan_row(row, update, Some(fallback.insert(found)), cap);
        }
        match planned {
            plan::RowPlan::Write(_) => writes += 1,
            plan::RowPlan::Current | plan::RowPlan::NeedsFallback => current += 1,
        }
    }
    Ok((writes, current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_table_of_a_stream_arn() {
        assert_eq!(
            stream_table(
                "arn:aws:dynamodb:ddblocal:000000000000:table/t-1/stream/2026-01-01T00:00:00.000"
            ),
            Some("t-1")
        );
        assert_eq!(stream_table("arn:aws:sqs:x"), None);
    }

    #[test]
    fn reads_the_template_batch_size() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml");
        assert_eq!(template_batch_size(&path).unwrap(), 100);
        assert!(template_batch_size(Path::new("/nonexistent.yaml")).is_err());
    }
}
