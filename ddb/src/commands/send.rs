//! `ddb send`: pattern C, a message written to a group as the app writes it (the function then
//! moves the group rows).

use super::write::{self, TextSource};
use super::CommandError;
use crate::cli::SendArgs;
use crate::connect::Target;
use crate::output::Output;

/// Reads the text from its one source, writes the message, says what was written.
pub async fn run(args: SendArgs, target: &Target, out: &Output) -> Result<(), CommandError> {
    let session = target.connect().await?;
    session.say_writing();
    let source = TextSource::from_flags(args.text, args.text_flag, args.text_file)?;
    let text = source.read(std::io::stdin().lock())?;
    let sent = write::send_from(
        &session.client,
        session.table(),
        &session.config.group_index_name,
        &args.group,
        &args.from,
        args.name,
        args.handle,
        &text,
        args.at.as_deref(),
    )
    .await?;
    out.written(&sent, "sent")
}
