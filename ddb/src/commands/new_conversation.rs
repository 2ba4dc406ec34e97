//! `ddb new-conversation`: a direct conversation started as the app starts one: both group rows
//! and the first message, in one transaction.

use super::write::{self, Who};
use super::CommandError;
use crate::cli::NewConversationArgs;
use crate::connect::Target;
use crate::output::Output;

/// Both participants need names: a seed user's own, or the flags'.
pub async fn run(
    args: NewConversationArgs,
    target: &Target,
    out: &Output,
) -> Result<(), CommandError> {
    let session = target.connect().await?;
    session.say_writing();
    let from = Who::parse(&args.from, args.name, args.handle)?.require("--name and --handle")?;
    let to =
        Who::parse(&args.to, args.to_name, args.to_handle)?.require("--to-name and --to-handle")?;
    let created =
        write::new_conversation(&session.client, session.table(), from, to, &args.text).await?;
    out.written(&created, "new conversation")
}
