//! `ddb list-tables`: the tables at the endpoint, one a line.

use super::{admin, CommandError};
use crate::connect::Target;
use crate::output::Output;

/// Every table name (all pages).
pub async fn run(target: &Target, out: &Output) -> Result<(), CommandError> {
    let session = target.connect().await?;
    for name in admin::list_tables(&session.client).await? {
        out.result(serde_json::json!({ "table": name }), &name)?;
    }
    Ok(())
}
