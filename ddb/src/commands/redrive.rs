//! `ddb redrive`: running failed batches through the function's handler again.
//!
//! Takes failure records (`failure_records`), gets each one's stream records (the S3 object's
//! payload as it is, or the range read back from the stream by `hydrate`), and runs them through
//! the very handler the Lambda runs, in stream order (failure records sorted by shard and start
//! sequence number), in batches of at most the template's BatchSize. `dry_run` runs the same
//! handler on a store that keeps its writes in memory ([`messaging_stream::store::Store::dry_run`]), so it
//! reads and plans exactly as the real run would, batch after batch, and writes nothing (the cache
//! is left alone too).
//!
//! The counts come from the handler's own [`Summary`] of each invocation, row by row: a row the
//! batches of one failure record touch several times counts once, under what it came to (moved
//! over fell back over edited over gone over already current), so the report does not grow with
//! the number of invocations. Records still failing (those Lambda would be given again: from the
//! record a response names to the end of its batch, or a whole batch after an invocation error)
//! and groups still failing are counted apart.
//!
//! Redriving twice changes nothing the second time: a row only ever moves forward to a newer
//! message, so records already applied find their rows current. Nothing in a report or in the
//! logs carries message text.

use crate::event_source_mapping::failure_records::FailureRecord;
use crate::event_source_mapping::hydrate::{self, compare_sequence_numbers};
use crate::template::{Template, TemplateError};
use aws_lambda_events::streams::DynamoDbEventResponse;
use messaging_stream::apply::{RowOutcome, RowResult};
use messaging_stream::counts::Counts;
use messaging_stream::event;
use messaging_stream::handler::{self, App, HandlerError, Summary};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::fmt;

/// How to redrive.
#[derive(Debug, Clone)]
pub struct RedriveOptions {
    /// Most records per invocation (the template's BatchSize).
    pub batch_size: usize,
    /// Read and plan only.
    pub dry_run: bool,
    /// The table was named on the command line (`--table`): records of another table's stream are
    /// redriven into it, with a warning, instead of refused.
    pub table_given: bool,
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
    /// Records the handler skipped as malformed (logged by the handler, never failing the batch).
    pub malformed: usize,
    /// Distinct rows, by what they came to (with `dry_run`: what they would come to).
    pub rows_moved: usize,
    pub rows_edited: usize,
    pub rows_fallen_back: usize,
    pub rows_already_current: usize,
    pub rows_gone: usize,
    /// Records Lambda would be given again: from the record a batch response names to the end of
    /// its batch, or a whole batch after an invocation error.
    pub records_failing: usize,
    /// Distinct groups still failing.
    pub groups_failing: usize,
    /// The range could not be read, or is refused (another table's stream): nothing ran.
    pub range_failing: bool,
    /// Why anything still fails.
    pub reasons: Vec<String>,
    /// What the operator should know though nothing failed (`ddb redrive` prints them on stderr).
    pub warnings: Vec<String>,
    pub dry_run: bool,
}

impl RecordReport {
    pub fn failed(&self) -> bool {
        self.range_failing || self.records_failing > 0 || self.groups_failing > 0
    }

    /// Rows written (or, dry, that would be).
    pub fn rows_written(&self) -> usize {
        self.rows_moved + self.rows_edited + self.rows_fallen_back
    }

    /// Counts the results of one invocation's [`Summary`] and response into the report.
    fn count(
        &mut self,
        tally: &mut Tally,
        batch: &[Value],
        summary: Summary,
        response: &DynamoDbEventResponse,
    ) {
        self.relevant += summary.counts.relevant;
        self.malformed += summary.counts.malformed;
        for row in summary.rows {
            tally.row(row);
        }
        tally.failed_groups.extend(summary.failed_group_ids);
        let retry_from = response
            .batch_item_failures
            .first()
            .and_then(|f| f.item_identifier.clone());
        if let Some(retry_from) = &retry_from {
            let at = batch
                .iter()
                .position(|r| {
                    r.pointer("/dynamodb/SequenceNumber")
                        .and_then(Value::as_str)
                        == Some(retry_from)
                })
                .unwrap_or(0);
            self.records_failing += batch.len() - at;
        }
        let retry_from = retry_from.unwrap_or_default();
        self.reasons.extend(
            summary
                .group_errors
                .into_iter()
                .map(|e| format!("{e} (Lambda would retry from {retry_from})")),
        );
    }
}

/// Each row's result over the invocations of one failure record, and the groups that failed.
#[derive(Default)]
struct Tally {
    rows: HashMap<(String, String), RowResult>,
    failed_groups: BTreeSet<String>,
}

impl Tally {
    /// A row seen again keeps the result that says most about what it came to.
    fn row(&mut self, row: RowOutcome) {
        fn rank(result: RowResult) -> u8 {
            match result {
                RowResult::Current => 0,
                RowResult::Gone => 1,
                RowResult::Edited => 2,
                RowResult::FellBack => 3,
                RowResult::Moved => 4,
            }
        }
        let kept = self.rows.entry((row.group, row.pk)).or_insert(row.result);
        if rank(row.result) > rank(*kept) {
            *kept = row.result;
        }
    }

    fn into_report(self, report: &mut RecordReport) {
        // Each distinct row once, counted as the handler counts a row with that result.
        let mut rows = Counts::default();
        for result in self.rows.into_values() {
            result.count(&mut rows);
        }
        report.rows_moved = rows.rows_moved;
        report.rows_edited = rows.rows_edited;
        report.rows_fallen_back = rows.rows_fallen_back;
        report.rows_already_current = rows.rows_current;
        report.rows_gone = rows.rows_gone;
        report.groups_failing = self.failed_groups.len();
    }
}

impl fmt::Display for RecordReport {
    /// `file:3 shardId-1 100..105 (metadata): read 6, relevant 4; rows moved 3, edited 1, fell back 0,
    /// already current 5; still failing 0 records, 0 groups`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}..{} ({}{}): read {}, relevant {}; rows {}moved {}, edited {}, fell back {}, already current {}",
            self.origin,
            self.shard_id,
            self.start_sequence_number,
            self.end_sequence_number,
            self.shape,
            if self.dry_run { ", dry run" } else { "" },
            self.records_read,
            self.relevant,
            if self.dry_run { "that would be " } else { "" },
            self.rows_moved,
            self.rows_edited,
            self.rows_fallen_back,
            self.rows_already_current,
        )?;
        if self.rows_gone > 0 {
            write!(f, ", gone {}", self.rows_gone)?;
        }
        if self.malformed > 0 {
            write!(f, "; malformed records skipped {}", self.malformed)?;
        }
        if self.range_failing {
            f.write_str("; still failing: the range")?;
        } else {
            write!(
                f,
                "; still failing {} records, {} groups",
                self.records_failing, self.groups_failing
            )?;
        }
        for reason in &self.reasons {
            write!(f, "\n  {reason}")?;
        }
        Ok(())
    }
}

/// The template's `BatchSize` parameter default.
#[derive(Debug, thiserror::Error)]
pub enum BatchSizeError {
    #[error("{0} (or pass --batch-size)")]
    Template(#[from] TemplateError),
    #[error("{path} has no Parameters.BatchSize.Default number (or pass --batch-size)")]
    Missing { path: String },
}

/// `Parameters.BatchSize.Default` of the SAM template.
pub fn template_batch_size(template: &Template) -> Result<usize, BatchSizeError> {
    template
        .yaml
        .get("Parameters")
        .and_then(|p| p.get("BatchSize"))
        .and_then(|p| p.get("Default"))
        .and_then(serde_norway::Value::as_u64)
        .filter(|n| *n > 0)
        .map(|n| n as usize)
        .ok_or_else(|| BatchSizeError::Missing {
            path: template.path.display().to_string(),
        })
}

/// The table a stream ARN belongs to (`arn:...:table/<name>/stream/<label>`).
fn stream_table(stream_arn: &str) -> Option<&str> {
    let (_, rest) = stream_arn.split_once(":table/")?;
    rest.split_once("/stream/").map(|(table, _)| table)
}

/// The table's current stream (DescribeTable's LatestStreamArn), to warn about ranges from another
/// one; `Err` says why it could not be checked.
async fn current_stream(app: &App) -> Result<Option<String>, String> {
    let table = app.store.table();
    app.store
        .client()
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map(|out| {
            out.table()
                .and_then(|t| t.latest_stream_arn())
                .map(str::to_owned)
        })
        .map_err(|e| {
            let (code, message) = messaging_stream::aws::describe_error(&e);
            format!("DescribeTable on table {table} failed ({code}) {message}")
        })
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
    // A dry run: the same handler, its writes kept in one draft for the whole run (so each batch
    // sees the ones before it, as in the real run), no cache invalidated.
    let dry;
    let app = if options.dry_run {
        dry = App {
            store: app.store.dry_run(),
            cache: None,
            ..app.clone()
        };
        &dry
    } else {
        app
    };
    let current = current_stream(app).await;
    let mut reports = Vec::with_capacity(records.len());
    for record in &records {
        reports.push(redrive_one(app, streams, record, options, &current).await);
    }
    reports
}

async fn redrive_one(
    app: &App,
    streams: &aws_sdk_dynamodbstreams::Client,
    record: &FailureRecord,
    options: &RedriveOptions,
    current_stream: &Result<Option<String>, String>,
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
    let range_failed = |mut report: RecordReport, reason: String| {
        report.range_failing = true;
        report.reasons.push(reason);
        report
    };
    let table = app.store.table();
    let arn = &record.info.stream_arn;
    match stream_table(arn).filter(|t| *t != table) {
        Some(other) if !options.table_given => {
            return range_failed(
                report,
                format!(
                    "the range is from the stream of table {other}, not of {table}: pass --table {other} \
                     (or --table {table} to redrive its records into {table} all the same)"
                ),
            );
        }
        Some(other) => report.warnings.push(format!(
            "{}: the range is from the stream of table {other}; its records are redriven into table {table} (--table)",
            record.origin
        )),
        None => match current_stream {
            Ok(Some(current)) if current == arn => {}
            Ok(current) => report.warnings.push(format!(
                "{}: the range is from stream {arn}, which is not table {table}'s current stream ({}): \
                 the table was dropped and re-created (or its stream replaced) since, so its rows may not be \
                 the ones these records were for",
                record.origin,
                current.as_deref().unwrap_or("it has none"),
            )),
            Err(error) => report.warnings.push(format!(
                "{}: could not check that the range is from table {table}'s current stream: {error}",
                record.origin
            )),
        },
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
            Err(error) => return range_failed(report, error.to_string()),
        },
    };
    report.records_read = lambda_records.len();
    let mut tally = Tally::default();
    for batch in lambda_records.chunks(options.batch_size.max(1)) {
        report.invocations += 1;
        let payload = json!({ "Records": batch });
        let handled = async {
            let records = event::parse_event(&payload)?;
            Ok::<_, HandlerError>(
                app.metrics
                    .measure(handler::handle(app, records, None))
                    .await?,
            )
        };
        match handled.await {
            Ok((response, summary)) => report.count(&mut tally, batch, summary, &response),
            Err(error) => {
                report.records_failing += batch.len();
                report.reasons.push(format!("invocation error: {error}"));
            }
        }
    }
    tally.into_report(&mut report);
    report
}

/// `ddb redrive`: one report line per failure record; fails when anything still fails.
pub async fn run(
    args: crate::cli::RedriveArgs,
    target: &crate::connect::Target,
    out: &crate::output::Output,
) -> Result<(), super::CommandError> {
    use crate::output::note;
    let session = target.connect().await?;
    if !args.dry_run {
        session.say_writing();
    }
    let batch_size = match args.batch_size {
        Some(size) => size as usize,
        None => template_batch_size(
            &Template::find(args.template.as_deref()).map_err(BatchSizeError::from)?,
        )?,
    };
    let sources = crate::event_source_mapping::failure_records::read_sources(&args.sources).await?;
    for skipped in &sources.skipped {
        note(format_args!("skipped {skipped}"));
    }
    let options = RedriveOptions {
        batch_size,
        dry_run: args.dry_run,
        table_given: session.table_given,
    };
    let reports = redrive(
        &session.app()?,
        &session.streams(),
        sources.records,
        &options,
    )
    .await;
    for report in &reports {
        for warning in &report.warnings {
            note(format_args!("warning: {warning}"));
        }
        out.result(report, report)?;
    }
    let sum = |count: fn(&RecordReport) -> usize| reports.iter().map(count).sum::<usize>();
    let failed = reports.iter().filter(|r| r.failed()).count();
    if failed > 0 {
        return Err(super::CommandError::Said(format!(
            "still failing in {failed} of {} failure records: {} records, {} groups, {} ranges not read (reasons above)",
            reports.len(),
            sum(|r| r.records_failing),
            sum(|r| r.groups_failing),
            sum(|r| usize::from(r.range_failing)),
        )));
    }
    out.text(format_args!(
        "{} {} failure records: rows {}moved {}, edited {}, fell back {}, already current {}",
        if args.dry_run {
            "dry run of"
        } else {
            "redrove"
        },
        reports.len(),
        if args.dry_run { "that would be " } else { "" },
        sum(|r| r.rows_moved),
        sum(|r| r.rows_edited),
        sum(|r| r.rows_fallen_back),
        sum(|r| r.rows_already_current),
    ))
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
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        assert_eq!(
            template_batch_size(&Template::read(&path).unwrap()).unwrap(),
            100
        );
        let none = Template::parse(&path, "Parameters: {}").unwrap();
        assert!(matches!(
            template_batch_size(&none),
            Err(BatchSizeError::Missing { .. })
        ));
    }

    #[test]
    fn a_row_counts_once_under_what_it_came_to() {
        let mut tally = Tally::default();
        let row = |group: &str, pk: &str, result| RowOutcome {
            group: group.into(),
            pk: pk.into(),
            result,
        };
        for outcome in [
            row("g", "GRP#a", RowResult::Current),
            row("g", "GRP#a", RowResult::Moved),
            row("g", "GRP#a", RowResult::Edited),
            row("g", "GRP#b", RowResult::Current),
            row("g", "GRP#b", RowResult::Current),
            row("h", "GRP#b", RowResult::Edited),
            row("h", "GRP#c", RowResult::Edited),
            row("h", "GRP#c", RowResult::FellBack),
        ] {
            tally.row(outcome);
        }
        tally.failed_groups.extend(["h".to_owned(), "h".to_owned()]);
        let mut report = RecordReport::default();
        tally.into_report(&mut report);
        assert_eq!(
            (
                report.rows_moved,
                report.rows_edited,
                report.rows_fallen_back,
                report.rows_already_current,
                report.groups_failing
            ),
            (1, 1, 1, 1, 1)
        );
    }
}
