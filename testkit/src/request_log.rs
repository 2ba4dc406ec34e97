//! Counting the DynamoDB requests a client sends, by operation, the IAM actions they need, and (when
//! asked) the capacity they consumed.
//!
//! An SDK interceptor that sees every HTTP attempt (SDK retries included), every call's input and
//! every call's final output. Tests use it to check request budgets and that the IAM policy allows
//! exactly what the code does; the benchmark prints it and prices its runs with the capacity.
//!
//! Capacity: the function's requests do not ask DynamoDB for their consumed capacity (nothing in
//! production reads it). A log made with [`RequestLog::counting_capacity_of`] asks for it
//! (`ReturnConsumedCapacity: TOTAL`) on each Query and TransactWriteItems on one table, and adds up
//! what the answers report ([`RequestLog::consumed`]).

use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableInput;
use aws_sdk_dynamodb::operation::query::{QueryInput, QueryOutput};
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsInput, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::types::{
    AttributeValue, ConsumedCapacity, ReturnConsumedCapacity, TransactWriteItem,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextMut, BeforeSerializationInterceptorContextRef,
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef, Input,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreAppend};
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

/// Capacity units consumed, as DynamoDB reported them (`ReturnConsumedCapacity: TOTAL`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Capacity {
    pub read_units: f64,
    pub write_units: f64,
    /// Answers that carried no figure (DynamoDB Local may leave it out).
    pub unreported: u64,
}

/// Whether a request reads or writes: how to count a figure without the read/write split.
#[derive(Debug, Clone, Copy)]
enum UnitKind {
    Read,
    Write,
}

/// Put in the call's config bag when a log asked for its capacity: that log counts its answer.
/// Appended, not replaced: two logs on one client each find their own.
#[derive(Debug, Clone)]
struct CapacityAsked {
    kind: UnitKind,
    by: Arc<Mutex<Capacity>>,
}

impl Storable for CapacityAsked {
    type Storer = StoreAppend<Self>;
}

impl Capacity {
    /// Adds the figures of one answer; a figure with only the total `CapacityUnits` (no read/write
    /// split, as DynamoDB Local answers some requests) is counted as `kind`.
    fn add<'a>(
        &mut self,
        kind: UnitKind,
        reports: impl IntoIterator<Item = Option<&'a ConsumedCapacity>>,
    ) {
        for report in reports {
            let Some(c) = report else {
                self.unreported += 1;
                continue;
            };
            match (c.read_capacity_units(), c.write_capacity_units()) {
                (None, None) => match kind {
                    UnitKind::Read => self.read_units += c.capacity_units().unwrap_or_default(),
                    UnitKind::Write => self.write_units += c.capacity_units().unwrap_or_default(),
                },
                (read, write) => {
                    self.read_units += read.unwrap_or_default();
                    self.write_units += write.unwrap_or_default();
                }
            }
        }
    }
}

/// Shared counts of requests by operation name (`Query`, `TransactWriteItems`, ...).
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    iam: Arc<Mutex<BTreeSet<IamUse>>>,
    /// The table whose Query and TransactWriteItems calls ask for their consumed capacity.
    capacity_of: Option<String>,
    consumed: Arc<Mutex<Capacity>>,
}

impl RequestLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// The same log, also asking for the consumed capacity of each Query and TransactWriteItems on
    /// `table` and adding it up ([`RequestLog::consumed`]). Install it on the client after this.
    pub fn counting_capacity_of(self, table: impl Into<String>) -> Self {
        Self {
            capacity_of: Some(table.into()),
            ..self
        }
    }

    /// Capacity the counted calls consumed so far, as DynamoDB reported it. A call that failed
    /// (a cancelled transaction among them) is not counted: it consumed no write capacity.
    pub fn consumed(&self) -> Capacity {
        *self.consumed.lock().expect("request log lock")
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
        *self.consumed.lock().expect("request log lock") = Capacity::default();
    }
}

/// Asks for the consumed capacity of `input` when it is a Query or a TransactWriteItems on `table`
/// (unless it already says what it wants); returns how to count the answer, if it will carry one.
fn ask_capacity(input: &mut Input, table: &str) -> Option<UnitKind> {
    let (asked, kind) = if let Some(query) = input.downcast_mut::<QueryInput>() {
        if query.table_name.as_deref() != Some(table) {
            return None;
        }
        (&mut query.return_consumed_capacity, UnitKind::Read)
    } else if let Some(transaction) = input.downcast_mut::<TransactWriteItemsInput>() {
        let on_table = transaction
            .transact_items
            .iter()
            .flatten()
            .any(|item| table_of(item) == Some(table));
        if !on_table {
            return None;
        }
        (&mut transaction.return_consumed_capacity, UnitKind::Write)
    } else {
        return None;
    };
    let asked = asked.get_or_insert(ReturnConsumedCapacity::Total);
    (*asked != ReturnConsumedCapacity::None).then_some(kind)
}

/// The table one action of a transaction writes or checks.
fn table_of(item: &TransactWriteItem) -> Option<&str> {
    item.put()
        .map(|put| put.table_name())
        .or_else(|| item.delete().map(|delete| delete.table_name()))
        .or_else(|| item.update().map(|update| update.table_name()))
        .or_else(|| item.condition_check().map(|check| check.table_name()))
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

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(table) = &self.capacity_of else {
            return Ok(());
        };
        if let Some(kind) = ask_capacity(context.input_mut(), table) {
            cfg.interceptor_state().store_append(CapacityAsked {
                kind,
                by: Arc::clone(&self.consumed),
            });
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(kind) = cfg
            .load::<CapacityAsked>()
            .find(|asked| Arc::ptr_eq(&asked.by, &self.consumed))
            .map(|asked| asked.kind)
        else {
            return Ok(());
        };
        let Some(Ok(output)) = context.output_or_error() else {
            return Ok(());
        };
        let mut consumed = self.consumed.lock().expect("request log lock");
        if let Some(query) = output.downcast_ref::<QueryOutput>() {
            consumed.add(kind, [query.consumed_capacity()]);
        } else if let Some(transaction) = output.downcast_ref::<TransactWriteItemsOutput>() {
            match transaction.consumed_capacity() {
                [] => consumed.add(kind, [None]),
                reports => consumed.add(kind, reports.iter().map(Some)),
            }
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
