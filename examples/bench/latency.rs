//! The round-trip time the delay proxy really adds, measured and tuned.
//!
//! The fault proxy (`testkit::fault_proxy`) sleeps on tokio's timer, which rounds up to
//! whole milliseconds and then some: asked for 5 ms, it adds more. The bench measures what it adds
//! and lowers its sleep until that is the RTT asked for.

use crate::report::{self, Calibration};
use crate::table;
use crate::tcp_delay::TcpDelay;
use messaging_stream::cache::valkey::ValkeyCache;
use messaging_stream::cache::{Cache, CacheKey};
use std::time::{Duration, Instant};
use testkit::fault_proxy::{FaultPlan, Proxy};
use testkit::request_log::RequestLog;
use testkit::{items, local};

/// Sets the proxy's sleep so that the time it adds per request is the RTT asked for.
///
/// The proxy sleeps on tokio's timer, which rounds up to whole milliseconds and then some, so asking it
/// for 5 ms adds more than 5 ms. Measure, lower the sleep by the excess, measure again.
pub async fn tune(
    direct: &aws_sdk_dynamodb::Client,
    proxy: &Proxy,
    latency_ms: u64,
) -> anyhow::Result<Calibration> {
    let target = latency_ms as f64;
    let mut sleep = target;
    let mut added = calibrate(direct, proxy).await?;
    for _ in 0..4 {
        if latency_ms == 0 || (added - target).abs() <= 0.2 {
            break;
        }
        sleep = (sleep - (added - target)).max(0.0);
        proxy.set_plan(FaultPlan::with_latency(Duration::from_secs_f64(
            sleep / 1000.0,
        )));
        added = calibrate(direct, proxy).await?;
    }
    Ok(Calibration {
        latency_ms,
        proxy_sleep_ms: sleep,
        added_ms: added,
    })
}

/// Median extra time of a GetItem through the proxy over a direct one, in ms: 60 pairs, each a
/// direct request then a proxied one, so load from elsewhere on the machine affects both alike.
async fn calibrate(direct: &aws_sdk_dynamodb::Client, proxy: &Proxy) -> anyhow::Result<f64> {
    let config = local::config_for(&proxy.endpoint_url(), table::TABLE);
    let proxied = local::client_for(&config, &RequestLog::new()).await;
    table::reset(direct, &[]).await?;
    let mut differences = Vec::new();
    for i in 0..61 {
        let mut pair = [0.0; 2];
        for (k, client) in [direct, &proxied].into_iter().enumerate() {
            let t = Instant::now();
            client
                .get_item()
                .table_name(table::TABLE)
                .key("pk", items::attr("calibration"))
                .key("sk", items::attr("x"))
                .send()
                .await?;
            pair[k] = t.elapsed().as_secs_f64();
        }
        if i > 0 {
            differences.push((pair[1] - pair[0]) * 1000.0); // the first opened the connections
        }
    }
    Ok(report::stats(&differences).expect("samples").median)
}

/// [`tune`] for the Valkey relay: its sleep lowered until a Valkey read through it (HMGET of an absent
/// key: one round trip) takes `latency_ms` more than the same read directly.
pub async fn tune_relay(
    direct: &ValkeyCache,
    relayed: &ValkeyCache,
    relay: &TcpDelay,
    latency_ms: u64,
) -> Calibration {
    let target = latency_ms as f64;
    let mut sleep = target;
    let mut added = calibrate_relay(direct, relayed).await;
    for _ in 0..4 {
        if latency_ms == 0 || (added - target).abs() <= 0.2 {
            break;
        }
        sleep = (sleep - (added - target)).max(0.0);
        relay.set_rtt(Duration::from_secs_f64(sleep / 1000.0));
        added = calibrate_relay(direct, relayed).await;
    }
    Calibration {
        latency_ms,
        proxy_sleep_ms: sleep,
        added_ms: added,
    }
}

/// Median extra time of a Valkey read through the relay over a direct one, in ms (60 pairs).
async fn calibrate_relay(direct: &ValkeyCache, relayed: &ValkeyCache) -> f64 {
    let key = CacheKey::Conversations("calibration".into());
    let mut differences = Vec::new();
    for i in 0..61 {
        let mut pair = [0.0; 2];
        for (k, cache) in [direct, relayed].into_iter().enumerate() {
            let t = Instant::now();
            cache.get(&key).await;
            pair[k] = t.elapsed().as_secs_f64();
        }
        if i > 0 {
            differences.push((pair[1] - pair[0]) * 1000.0); // the first opened the connections
        }
    }
    report::stats(&differences).expect("samples").median
}
