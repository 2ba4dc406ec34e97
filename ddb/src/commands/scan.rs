//! `ddb scan`: every item of the table, or of one of its indexes.

use super::{admin, CommandError};
use crate::cli::ScanArgs;
use crate::connect::Target;
use crate::output::Output;
use messaging_stream::model::{GROUP_ATTR, MESSAGE_ATTR, PK_ATTR, SK_ATTR, USER_HANDLE_ATTR};

/// The columns of a table of items.
const COLUMNS: &[&str] = &[PK_ATTR, SK_ATTR, GROUP_ATTR, USER_HANDLE_ATTR, MESSAGE_ATTR];

/// Prints the items, at most `--limit`.
pub async fn run(args: ScanArgs, target: &Target, out: &Output) -> Result<(), CommandError> {
    let session = target.connect().await?;
    let limit = args.limit.map(|l| l as usize);
    let items = admin::scan(
        &session.client,
        session.table(),
        args.index.as_deref(),
        limit,
    )
    .await?;
    out.items(&items, COLUMNS)
}
