//! The ElastiCache users template.yaml creates with `ReadCache` `valkey` can do what the Valkey backend does,
//! and nothing of what they must not: each user's access string, read from the template, is given to a user of
//! the local TLS redis-server (testkit::valkey, Debian's redis-server, the same ACL rules as Valkey's), which then
//! runs the backend's own calls. The readers' user gets, leases, fills and invalidates; the function's user
//! invalidates and is refused everything else (a refusal is a miss, as for any error).
//!
//! IAM authentication needs AWS: here a password stands in for the token, as in tests/cache.rs. Database 0,
//! as on ElastiCache Serverless (the backend sends no SELECT there, which these access strings do not allow).

mod deploy_support;

use deploy_support::*;
use messaging_stream::cache::{Cache, CacheKey, Cached, Filled};
use std::time::Duration;
use testkit::valkey;

const PASSWORD: &str = "a-local-stand-in-for-the-iam-token";

/// The server's script cache is shared: a test that flushes it and expects a refused SCRIPT LOAD must not
/// see another test load the script in between. Every test here holds this.
static SCRIPTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The words of `id`'s AccessString in template.yaml (a user of the `valkey` deployment).
fn access_string(id: &str) -> Vec<String> {
    let deployed = template_with(&[("ReadCache", "valkey")]);
    at(resource(&deployed, id), &["Properties", "AccessString"])
        .as_str()
        .expect("AccessString is a string")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// A user of the local server with exactly `id`'s access string (and a password standing in for IAM).
async fn user_like(
    id: &str,
    name: &str,
    leave_out: &[&str],
) -> messaging_stream::cache::valkey::ValkeyCache {
    let mut rules = vec!["reset".to_owned(), format!(">{PASSWORD}")];
    rules.extend(
        access_string(id)
            .into_iter()
            .filter(|rule| !leave_out.contains(&rule.as_str())),
    );
    let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
    valkey::set_user(name, &rules).await;
    valkey::ddb_database().cache_as(name, PASSWORD)
}

/// Empties the server's script cache, so the next script call takes the NOSCRIPT path (EVALSHA, SCRIPT LOAD,
/// EVALSHA), as on a fresh ElastiCache node.
async fn flush_scripts() {
    let mut admin = valkey::ddb_database().admin().await;
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async::<()>(&mut admin)
        .await
        .expect("SCRIPT FLUSH");
}

async fn exists(key: &CacheKey) -> bool {
    let mut admin = valkey::ddb_database().admin().await;
    redis::cmd("EXISTS")
        .arg(key.id())
        .query_async::<i64>(&mut admin)
        .await
        .expect("EXISTS")
        == 1
}

fn key() -> CacheKey {
    CacheKey::Conversations(uuid::Uuid::new_v4().to_string())
}

fn value() -> Cached {
    Cached {
        value: r#"[{"uuid":"g"}]"#.to_owned(),
        covers: None,
    }
}

const TTL: Duration = Duration::from_secs(60);

#[tokio::test]
async fn the_readers_user_reads_leases_fills_and_invalidates() {
    let _scripts = SCRIPTS.lock().await;
    flush_scripts().await;
    let reader = user_like("CacheReaderUser", "reader-as-deployed", &[]).await;
    let key = key();
    assert!(reader.get(&key).await.is_none(), "a miss first");
    let lease = reader
        .lease(&key)
        .await
        .expect("the reader takes the lease");
    assert_eq!(
        reader.set(&key, &lease, &value(), TTL).await,
        Filled::Stored
    );
    assert_eq!(reader.get(&key).await, Some(value()), "then a hit");
    reader
        .invalidate(std::slice::from_ref(&key))
        .await
        .expect("the reader may invalidate");
    assert!(!exists(&key).await);
}

#[tokio::test]
async fn the_functions_user_invalidates_and_can_do_nothing_else() {
    let _scripts = SCRIPTS.lock().await;
    let reader = user_like("CacheReaderUser", "reader-for-the-function-test", &[]).await;
    let function = user_like("CacheUser", "function-as-deployed", &[]).await;
    let key = key();
    let lease = reader.lease(&key).await.expect("a lease");
    assert_eq!(
        reader.set(&key, &lease, &value(), TTL).await,
        Filled::Stored
    );
    // Refused (NOPERM), so a miss: it may not read the lists, which hold message text.
    assert!(
        function.get(&key).await.is_none(),
        "the function's user read an entry"
    );
    let other = self::key();
    flush_scripts().await;
    assert!(
        function.lease(&other).await.is_none(),
        "the function's user took a lease"
    );
    assert!(!exists(&other).await);
    function
        .invalidate(&[key.clone(), other.clone()])
        .await
        .expect("the function's user invalidates");
    assert!(!exists(&key).await, "the entry is gone");
}

/// The check can fail: without `+script|load` a reader's first lease on a fresh server is refused, and
/// without `+del` the function's invalidation fails.
#[tokio::test]
async fn a_user_without_a_command_the_backend_sends_is_refused() {
    let _scripts = SCRIPTS.lock().await;
    flush_scripts().await;
    let reader = user_like(
        "CacheReaderUser",
        "reader-without-script-load",
        &["+script|load"],
    )
    .await;
    assert!(
        reader.lease(&key()).await.is_none(),
        "a lease without SCRIPT LOAD"
    );
    let function = user_like("CacheUser", "function-without-del", &["+del"]).await;
    assert!(
        function.invalidate(&[key()]).await.is_err(),
        "an invalidation without DEL"
    );
}

#[tokio::test]
async fn the_users_are_limited_to_the_caches_keys() {
    let _scripts = SCRIPTS.lock().await;
    let _reader = user_like("CacheReaderUser", "reader-outside-its-keys", &[]).await;
    let mut as_reader = valkey::ddb_database()
        .endpoint()
        .connect("reader-outside-its-keys", PASSWORD)
        .await
        .expect("connect as the reader");
    let hmget = |key: String| {
        let mut command = redis::cmd("HMGET");
        command.arg(key).arg("cached_value");
        command
    };
    let inside = hmget(key().id())
        .query_async::<redis::Value>(&mut as_reader)
        .await;
    assert!(inside.is_ok(), "{inside:?}");
    // A key of the messages table's forms (or any other) is refused.
    let outside = hmget("GRP#someone".to_owned())
        .query_async::<redis::Value>(&mut as_reader)
        .await;
    assert!(
        outside.is_err(),
        "HMGET outside the cache's keys: {outside:?}"
    );
}

/// A reader in another language (docs/CACHE.md) sends the lease script with `EVAL`: the readers' user may.
#[tokio::test]
async fn the_readers_user_may_eval_the_lease_script_as_docs_cache_gives_it() {
    let _scripts = SCRIPTS.lock().await;
    user_like("CacheReaderUser", "reader-in-python", &[]).await;
    let mut connection = valkey::ddb_database()
        .endpoint()
        .connect("reader-in-python", PASSWORD)
        .await
        .expect("connect as the reader");
    let key = key();
    let taken: i64 = redis::cmd("EVAL")
        .arg(messaging_stream::cache::valkey::LEASE_SCRIPT)
        .arg(1)
        .arg(key.id())
        .arg(uuid::Uuid::new_v4().to_string())
        .arg(10_000)
        .query_async(&mut connection)
        .await
        .expect("EVAL of the lease script");
    assert_eq!(taken, 1);
    assert!(exists(&key).await);
}
