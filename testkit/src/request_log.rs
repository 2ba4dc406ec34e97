//! Counting the DynamoDB requests a client sends, by operation, and the IAM actions they need.
//!
//! An SDK interceptor that sees every HTTP attempt (SDK retries included) and every call's input.
//! Tests use it to check request budgets and that the IAM policy allows exactly what the code does;
//! the benchmark prints it.

use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableInput;
use aws_sdk_dynamodb::operation::query::QueryInput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use messaging_stream::model::PK_ATTR;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// One IAM authorisation a call needed: action, resource and the partition key it touched.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IamUse {
    /// e.g. `dynamodb:PutItem` (a transaction is authorised item by item).
    pub action: String,
    /// `table/<name>` or `table/<name>/index/<index>`.
    pub resource: String,
    /// The `dynamodb:LeadingKeys` value, where the call has one (`pk`, or a cache table's `id`).
    pub leading_key: Option<String>,
}

/// Shared counts of requests by operation name (`Query`, `TransactWriteItems`, ...).
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    iam: Arc<Mutex<BTreeSet<IamUse>>>,
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

    /// The IAM authorisations of the Query, TransactWriteItems, BatchWriteItem and DescribeTable calls so far.
    pub fn iam_uses(&self) -> BTreeSet<IamUse> {
        self.iam.lock().expect("request log lock").clone()
    }

    /// Forgets what was counted.
    pub fn reset(&self) {
        self.counts.lock().expect("request log lock").clear();
        self.iam.lock().expect("request log lock").clear();
    }
}

fn string(value: Option<&AttributeValue>) -> Option<String> {
    value.and_then(|v| v.as_s().ok()).cloned()
}

/// What IAM checks for a Query, TransactWriteItems, BatchWriteItem or DescribeTable call; other calls are not
/// recorded.
fn iam_uses_of(
    input: &aws_smithy_runtime_api::client::interceptors::context::Input,
) -> Vec<IamUse> {
    if let Some(describe) = input.downcast_ref::<DescribeTableInput>() {
        return vec![IamUse {
            action: "dynamodb:DescribeTable".into(),
            resource: format!("table/{}", describe.table_name().unwrap_or_default()),
            leading_key: None,
        }];
    }
    if let Some(query) = input.downcast_ref::<QueryInput>() {
        let table = query.table_name().unwrap_or_default();
        let (resource, leading_key) = match query.index_name() {
            Some(index) => (format!("table/{table}/index/{index}"), None),
            // Our base-table queries name the partition as `:pk`.
            None => (
                format!("table/{table}"),
                string(
                    query
                        .expression_attribute_values()
                        .and_then(|v| v.get(":pk")),
                ),
            ),
        };
        return vec![IamUse {
            action: "dynamodb:Query".into(),
            resource,
            leading_key,
        }];
    }
    if let Some(batch) = input.downcast_ref::<BatchWriteItemInput>() {
        // BatchWriteItem is authorised as itself, once per item, on each item's table.
        return batch
            .request_items()
            .into_iter()
            .flatten()
            .flat_map(|(table, requests)| {
                requests.iter().map(move |request| {
                    let key = request
                        .delete_request()
                        .map(|d| d.key())
                        .or_else(|| request.put_request().map(|p| p.item()));
                    IamUse {
                        action: "dynamodb:BatchWriteItem".into(),
                        resource: format!("table/{table}"),
                        leading_key: key.and_then(|k| {
                            string(
                                k.get(PK_ATTR)
                                    .or_else(|| k.get(messaging_stream::cache::dynamo::ID)),
                            )
                        }),
                    }
                })
            })
            .collect();
    }
    let Some(transaction) = input.downcast_ref::<TransactWriteItemsInput>() else {
        return Vec::new();
    };
    let use_of = |action: &str, table: &str, pk: Option<&AttributeValue>| IamUse {
        action: action.into(),
        resource: format!("table/{table}"),
        leading_key: string(pk),
    };
    transaction
        .transact_items()
        .iter()
        .filter_map(|item| {
            if let Some(put) = item.put() {
                Some(use_of(
                    "dynamodb:PutItem",
                    put.table_name(),
                    put.item().get(PK_ATTR),
                ))
            } else if let Some(delete) = item.delete() {
                Some(use_of(
                    "dynamodb:DeleteItem",
                    delete.table_name(),
                    delete.key().get(PK_ATTR),
                ))
            } else if let Some(update) = item.update() {
                Some(use_of(
                    "dynamodb:UpdateItem",
                    update.table_name(),
                    update.key().get(PK_ATTR),
                ))
            } else {
                item.condition_check().map(|check| {
                    use_of(
                        "dynamodb:ConditionCheckItem",
                        check.table_name(),
                        check.key().get(PK_ATTR),
                    )
                })
            }
        })
        .collect()
}

impl Intercept for RequestLog {
    fn name(&self) -> &'static str {
        "RequestLog"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let uses = iam_uses_of(context.input());
        if !uses.is_empty() {
            self.iam.lock().expect("request log lock").extend(uses);
        }
        Ok(())
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
