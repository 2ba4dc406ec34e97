//! The count of DynamoDB requests each invocation sends: an SDK interceptor ([`RequestCounter`],
//! installed on the client by [`crate::aws::dynamodb_config`]) counting into a task-local that
//! [`count_requests`] scopes to one invocation. The metrics document reports it.
//!
//! Apart from the metrics so that the clients' module need not import them: the metrics read the
//! summary, which reads the per-group outcomes, which reach the clients.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::cell::Cell;
use std::future::Future;

tokio::task_local! {
    static REQUESTS: Cell<u64>;
}

/// Runs `work` and counts the DynamoDB HTTP requests (SDK retries included) that clients with a
/// [`RequestCounter`] send from inside it. Scoped to the task, so invocations running at once
/// (`ddb watch` on several shards) are counted apart.
pub async fn count_requests<T>(work: impl Future<Output = T>) -> (T, u64) {
    REQUESTS
        .scope(Cell::new(0), async move {
            let output = work.await;
            (output, REQUESTS.with(Cell::get))
        })
        .await
}

/// An SDK interceptor counting each attempt sent within [`count_requests`]; outside it, nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestCounter;

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let _outside_an_invocation = REQUESTS.try_with(|count| count.set(count.get() + 1));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_only_inside_the_scope() {
        let ((), n) = count_requests(async {
            REQUESTS.with(|c| c.set(c.get() + 2));
        })
        .await;
        assert_eq!(n, 2);
        assert!(REQUESTS.try_with(Cell::get).is_err());
    }
}
