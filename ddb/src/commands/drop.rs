//! `ddb drop --yes`: the table deleted with everything in it; without `--yes`, a refusal.

use super::{admin, CommandError};
use crate::cli::DropArgs;
use crate::connect::Target;
use crate::output::Output;

/// Deletes the table, only when told twice (`drop --yes`).
pub async fn run(args: DropArgs, target: &Target, out: &Output) -> Result<(), CommandError> {
    let session = target.connect().await?;
    let table = session.table();
    if !args.yes {
        return Err(CommandError::Said(format!(
            "refusing to drop table {table} at {}: add --yes (-y) to delete it and all its items",
            session.endpoint()
        )));
    }
    session.say_writing();
    admin::drop_table(&session.client, table).await?;
    out.result(
        serde_json::json!({ "dropped": table }),
        format_args!("dropped table {table}"),
    )
}
