//! Counting the DynamoDB requests a client sends, by operation.
//!
//! An SDK interceptor that sees every HTTP attempt (SDK retries included). Tests use it to check
//! request budgets and which operations the IAM policy must allow; the benchmark prints it.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Shared counts of requests by operation name (`Query`, `TransactWriteItems`, ...).
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl RequestLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests per operation so far.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().expect("request log lock").clone()
    }

    /// All requests so far.
    pub fn total(&self) -> u64 {
        self.counts().values().sum()
    }

    /// Forgets what was counted.
    pub fn reset(&self) {
        self.counts.lock().expect("request log lock").clear();
    }
}

impl Intercept for RequestLog {
    fn name(&self) -> &'static str {
        "RequestLog"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map_or("unknown", Metadata::name)
            .to_owned();
        *self
            .counts
            .lock()
            .expect("request log lock")
            .entry(operation)
            .or_default() += 1;
        Ok(())
    }
}
