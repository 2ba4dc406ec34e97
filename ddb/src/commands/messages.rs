//! `ddb messages`: pattern A, a group's messages as the app returns them, or the `MSG#` items
//! themselves (`--items`).

use super::lists::{show, Show};
use super::CommandError;
use crate::cli::MessagesArgs;
use crate::connect::Target;
use crate::output::Output;
use crate::reads::List;
use messaging_stream::model::{MESSAGE_ATTR, SK_ATTR, USER_HANDLE_ATTR};

/// The columns of `--items`.
const ITEM_COLUMNS: &[&str] = &[SK_ATTR, USER_HANDLE_ATTR, MESSAGE_ATTR];

/// Prints the messages; fails when the group has none.
pub async fn run(args: MessagesArgs, target: &Target, out: &Output) -> Result<(), CommandError> {
    let group = args.group_uuid;
    let session = target.connect().await?;
    let nothing = format!(
        "nothing found for group {group:?} in table {}: no messages ({} has no items)",
        session.table(),
        List::Messages.pk(&group)
    );
    let request = Show {
        list: List::Messages,
        id: &group,
        limit: args.limit,
        no_cache: args.no_cache,
        items: args.items.then_some(ITEM_COLUMNS),
        nothing,
    };
    show(request, &session, out).await
}
