//! What `ddb conversations` and `ddb messages` share: one of the app's two lists, read as the app
//! reads it (through the cache when one is set and not bypassed), or its items themselves.

use super::CommandError;
use crate::connect::Session;
use crate::output::{self, Output};
use crate::reads::{ttl_from_env, Consistency, List, Reader};
use messaging_stream::cache::dynamo::DynamoCache;
use messaging_stream::cache::Cache;
use std::sync::Arc;

/// One list command's request.
pub(super) struct Show<'a> {
    pub list: List,
    /// The user's or the group's id.
    pub id: &'a str,
    pub limit: Option<u32>,
    pub no_cache: bool,
    /// Print the items themselves (every attribute) in these columns, not the app's entries.
    pub items: Option<&'a [&'a str]>,
    /// The error when the list is empty.
    pub nothing: String,
}

/// Reads and prints the list; an empty list is an error (`nothing`).
pub(super) async fn show(
    show: Show<'_>,
    session: &Session,
    out: &Output,
) -> Result<(), CommandError> {
    let (client, table) = (&session.client, session.table());
    let limit = show.limit.map(|l| l as usize);
    if let Some(columns) = show.items {
        let rows = show
            .list
            .rows(client, table, show.id, limit, Consistency::Eventual)
            .await?;
        if rows.is_empty() {
            return Err(CommandError::Said(show.nothing));
        }
        return out.items(&rows, columns);
    }
    let entries = match cached_reader(session, show.no_cache)? {
        Some((reader, which)) => {
            let read = reader.read(show.list, show.id, show.limit).await?;
            output::note(format_args!(
                "cache {} ({} in {which})",
                read.served,
                show.list.cache_key(show.id)
            ));
            read.entries
        }
        None => show
            .list
            .rows(client, table, show.id, limit, Consistency::Eventual)
            .await?
            .iter()
            .map(|item| show.list.entry(item))
            .collect(),
    };
    if entries.is_empty() {
        return Err(CommandError::Said(show.nothing));
    }
    out.entries(&entries)
}

/// The read-through reader when a cache (a cache table, or `VALKEY_ENDPOINT`) is set and not
/// bypassed, and which cache it is. Only then is `CACHE_TTL_SECONDS` read (and a bad value refused):
/// it is the fill's setting.
fn cached_reader(
    session: &Session,
    no_cache: bool,
) -> Result<Option<(Reader, String)>, CommandError> {
    if no_cache {
        return Ok(None);
    }
    let config = &session.config;
    let client = &session.client;
    let (cache, which): (Arc<dyn Cache>, _) =
        match (&config.cache_table_name, session.valkey_cache()?) {
            (Some(table), _) => (
                Arc::new(DynamoCache::new(client.clone(), table.clone())),
                format!("cache table {table}"),
            ),
            (None, Some(valkey)) => {
                let at = format!(
                    "Valkey at {}:{}",
                    valkey.endpoint().host,
                    valkey.endpoint().port
                );
                (Arc::new(valkey), at)
            }
            (None, None) => return Ok(None),
        };
    let ttl = ttl_from_env()?;
    Ok(Some((
        Reader::new(client.clone(), config.table_name.clone()).with_cache(cache, ttl),
        which,
    )))
}
