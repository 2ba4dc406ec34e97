//! `ddb`: the developer and operator CLI of messaging-stream, as a library its binary (and the
//! tests) drive. It runs the table on DynamoDB Local (or any endpoint), emulates the stream trigger,
//! and recovers failed batches, calling the Lambda's own handler (the `messaging_stream` crate).
//!
//! [`cli`]: clap's types and the exit statuses; [`connect`]: the flags over the Lambda's config,
//! the clients and the Lambda's app; [`commands`]: one module per subcommand, each with one `run`;
//! [`output`]: everything printed (tables, JSON lines, errors and their fixes);
//! [`event_source_mapping`]: the stream trigger's emulator (`ddb watch`, `ddb redrive`'s ranges);
//! [`template`]: the one reader of template.yaml, whose settings watch, redrive and the filter
//! checks share; [`filter`]: the template's event-filter patterns, matched with quamina;
//! [`reads`]: the app's two reads (conversations, messages), from the table or through the cache.

pub mod cli;
pub mod commands;
pub mod connect;
pub mod event_source_mapping;
pub mod filter;
pub mod output;
pub mod reads;
pub mod template;
