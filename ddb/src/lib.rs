//! `ddb`: the developer and operator CLI of messaging-stream, as a library its binary (and the
//! tests) drive. It runs the table on DynamoDB Local (or any endpoint), emulates the stream trigger,
//! and recovers failed batches, calling the Lambda's own handler (the `messaging_stream` crate).
//!
//! [`commands`]: one module per developer command and what they share (errors and hints, output);
//! [`event_source_mapping`]: the stream trigger's emulator (`ddb watch`, `ddb redrive`'s ranges);
//! [`template`]: the one reader of template.yaml, whose settings watch, redrive and the filter
//! checks share; [`filter`]: the template's event-filter patterns, matched with quamina;
//! [`reads`]: the app's two reads (conversations, messages), read through the cache.

pub mod commands;
pub mod event_source_mapping;
pub mod filter;
pub mod reads;
pub mod template;
