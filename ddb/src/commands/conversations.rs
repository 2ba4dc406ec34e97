//! `ddb conversations`: pattern B, a user's conversation list as the app returns it, or the
//! `GRP#` rows themselves (`--items`).

use super::lists::{show, Show};
use super::{write, CommandError};
use crate::cli::ConversationsArgs;
use crate::connect::Target;
use crate::output::Output;
use crate::reads::List;
use messaging_stream::model::{GROUP_ATTR, MESSAGE_ATTR, SK_ATTR, USER_HANDLE_ATTR};

/// The columns of `--items`.
const ROW_COLUMNS: &[&str] = &[SK_ATTR, USER_HANDLE_ATTR, GROUP_ATTR, MESSAGE_ATTR];

/// Prints the list; fails when the user has none.
pub async fn run(
    args: ConversationsArgs,
    target: &Target,
    out: &Output,
) -> Result<(), CommandError> {
    // A seed user's handle is accepted for convenience; anything else is taken as an id.
    let user = write::user(&args.user_uuid).map_or(args.user_uuid, |u| u.uuid.to_owned());
    let session = target.connect().await?;
    let nothing = format!(
        "nothing found for user {user:?} in table {}: no conversations ({} has no rows; give a \
         user's id, or a seed user's handle)",
        session.table(),
        List::Conversations.pk(&user)
    );
    let request = Show {
        list: List::Conversations,
        id: &user,
        limit: args.limit,
        no_cache: args.no_cache,
        items: args.items.then_some(ROW_COLUMNS),
        nothing,
    };
    show(request, &session, out).await
}
