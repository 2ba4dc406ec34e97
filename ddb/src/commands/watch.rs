//! `ddb watch`: the table's stream triggering the function in-process, as the Lambda event source
//! mapping does. The settings are the template's mapping (Lambda's defaults without one), each
//! flag over its setting; this module turns them into the trigger's options, prints progress on
//! stderr and stops on Ctrl-C (or SIGTERM), or once drained with `--once`.

use super::CommandError;
use crate::cli::WatchArgs;
use crate::connect::Target;
use crate::event_source_mapping::mapping::{self, Settings};
use crate::event_source_mapping::watch::{StatsSnapshot, Trigger, WatchOptions};
use crate::filter::EventFilter;
use crate::output::{self, Output};
use crate::template;
use std::time::Duration;

/// How often progress is said (when it changed).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Runs the trigger until stopped (or drained); fails when `--once` gave a range up.
pub async fn run(args: WatchArgs, target: &Target, out: &Output) -> Result<(), CommandError> {
    let session = target.connect().await?;
    let app = session.app_with_metrics(args.metrics)?;
    let settings = settings(&args)?;
    output::watch_note(format_args!("settings from {settings}"));
    // After the settings, which stay the first line.
    session.say_writing();
    let options = options(&settings, &args);
    let mut trigger = Trigger::new(session.streams(), app, session.table(), options).await?;
    let filter = if settings.filters.value.is_empty() {
        "none".to_owned()
    } else {
        let origin = match (&settings.mapping, &settings.template) {
            (Some(mapping), Some(template)) => format!("{mapping} of {}", template.display()),
            _ => "flags".to_owned(),
        };
        let filter = EventFilter::from_patterns(settings.filters.value.clone()).map_err(|e| {
            CommandError::from(e).context(format!("the FilterCriteria of {origin}"))
        })?;
        trigger = trigger.with_filter(filter);
        origin
    };
    output::watch_note(format_args!(
        "{} -> messaging-stream handler (filter: {filter})",
        trigger.stream_arn()
    ));
    let stats = trigger.stats();
    let progress = tokio::spawn(async move {
        let mut shown = StatsSnapshot::default();
        loop {
            tokio::time::sleep(PROGRESS_EVERY).await;
            let now = stats.snapshot();
            if now != shown {
                output::watch_note(now);
                shown = now;
            }
        }
    });
    let result = if args.once {
        trigger.drain().await
    } else {
        trigger.run_until(shutdown()).await
    };
    progress.abort();
    let stats = result?;
    let how = if args.once { "drained" } else { "stopped" };
    out.result(stats, format_args!("{how}: {stats}"))?;
    if args.once && stats.ranges_given_up > 0 {
        return Err(CommandError::Said(format!(
            "{} records given up after their retries: see {}",
            stats.records_given_up,
            args.failures_file.display()
        )));
    }
    Ok(())
}

/// The template's mapping (or Lambda's defaults without one), each flag over its setting.
fn settings(args: &WatchArgs) -> Result<Settings, CommandError> {
    let mut settings = match template::locate(args.template.as_deref()) {
        Ok(path) => mapping::read(&path, args.function.as_deref()).map_err(|e| {
            CommandError::from(e).context(
                "the watch settings come from the template's stream event (or pass --no-filter to use \
                 Lambda's defaults without one)",
            )
        })?,
        Err(_) if args.no_filter => Settings::default(),
        Err(error) => {
            return Err(CommandError::Said(format!(
                "{error} (or --no-filter to use Lambda's defaults)"
            )))
        }
    };
    settings.starting_position.override_with(args.from);
    settings.batch_size.override_with(args.batch_size);
    settings
        .maximum_batching_window_seconds
        .override_with(args.batching_window);
    let bisect = match (args.bisect, args.no_bisect) {
        (true, _) => Some(true),
        (false, true) => Some(false),
        _ => None,
    };
    settings
        .bisect_batch_on_function_error
        .override_with(bisect);
    settings
        .maximum_retry_attempts
        .override_with(args.max_retries);
    settings
        .maximum_record_age_seconds
        .override_with(args.max_record_age);
    settings
        .parallelization_factor
        .override_with(args.parallelization_factor);
    settings.timeout_seconds.override_with(args.timeout);
    if args.no_filter {
        settings.filters.override_with(Some(Vec::new()));
    }
    settings.validate()?;
    Ok(settings)
}

/// The trigger's options: the settings in force, and where failures and checkpoints go.
fn options(settings: &Settings, args: &WatchArgs) -> WatchOptions {
    // -1 (for ever) is no limit.
    let seconds = |value: i64| u64::try_from(value).ok().map(Duration::from_secs);
    WatchOptions {
        from: settings.starting_position.value,
        batch_size: settings.batch_size.value as usize,
        batching_window: Duration::from_secs(u64::from(
            settings.maximum_batching_window_seconds.value,
        )),
        bisect: settings.bisect_batch_on_function_error.value,
        max_retries: u32::try_from(settings.maximum_retry_attempts.value).ok(),
        max_record_age: seconds(settings.maximum_record_age_seconds.value),
        parallelization: settings.parallelization_factor.value as usize,
        failures_file: Some(args.failures_file.clone()),
        checkpoint: args.checkpoint.clone(),
        timeout: Duration::from_secs(u64::from(settings.timeout_seconds.value)),
        ..WatchOptions::default()
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
