//! messaging-stream: a DynamoDB Streams consumer that keeps Cruddur conversation lists current.
//!
//! The pipeline, one module per step:
//! [`event`] (parse each record) -> [`plan`] (pure: coalesce per group, decide moves) ->
//! [`store`] (the table's requests; with `cache::dynamo`, the function's only DynamoDB callers) driven per group by [`apply`] ->
//! [`handler`] (one entry, `handle`: bounded concurrency, deadline, summary log) -> [`response`]
//! (the batch response).
//! [`model`] names the table's keys and attributes (the bottom: it imports nothing of ours);
//! [`config`] is read and checked once at start-up; [`aws`] builds the SDK clients from it;
//! [`summary`] holds a batch's counts, from which [`metrics`] writes one CloudWatch EMF document
//! per invocation, around the handler ([`request_count`] counts its DynamoDB requests). [`timestamp`] orders and nudges
//! sort keys by instant; [`size`] is DynamoDB's item-size arithmetic. Imports go one way:
//! tests/shape.rs fails on a circle.

pub mod apply;
pub mod aws;
pub mod backoff;
pub mod cache;
pub mod config;
pub mod counts;
pub mod event;
pub mod handler;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod request_count;
pub mod response;
pub mod size;
pub mod store;
pub mod summary;
pub mod timestamp;

pub use config::Config;
pub use handler::{handle, App};
