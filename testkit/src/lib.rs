//! What messaging-stream's tests and bench share, one copy of each: DynamoDB Local and a fresh
//! table per test ([`local`]), the items and stream records the app and DynamoDB Streams write
//! ([`items`]), a fault-injecting proxy in front of DynamoDB Local ([`fault_proxy`]), the log of
//! the DynamoDB requests a client made ([`request_log`]), our binaries as the tests run them
//! ([`bin`]), a stub of the Lambda Runtime API to run the Lambda binary against
//! ([`runtime_api`]) and a TLS Valkey server for the Valkey cache ([`valkey`]). A dev-dependency
//! only: nothing here reaches the Lambda or `ddb`.

pub mod bin;
pub mod fault_proxy;
pub mod items;
pub mod local;
pub mod request_log;
pub mod runtime_api;
pub mod valkey;

/// The workspace's root folder (template.yaml, events/, policies/).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ sits in the workspace's root")
        .to_path_buf()
}
