//! The app's direct reads by their old path (`examples/bench` measures them): the reads
//! themselves are written once, in [`crate::reads::List::rows`].

use crate::output::LocalError;
use crate::reads::{Consistency, List};
use aws_sdk_dynamodb::Client;
use messaging_stream::plan::Item;

/// Pattern B: `GRP#<user>` rows, newest first, at most `limit`, as the app reads them.
pub async fn conversations(
    client: &Client,
    table: &str,
    user_uuid: &str,
    limit: Option<usize>,
) -> Result<Vec<Item>, LocalError> {
    List::Conversations
        .rows(client, table, user_uuid, limit, Consistency::Eventual)
        .await
}
