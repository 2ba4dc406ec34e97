//! `ddb local start|stop|status`: the shared DynamoDB Local, run by the Makefile's own script.

use super::CommandError;
use crate::cli::{LocalAction, EXIT_ERROR};
use std::path::PathBuf;

/// The script `ddb local` runs, relative to a checkout.
const LOCAL_SCRIPT: &str = "scripts/dynamodb-local.sh";

/// The Makefile's script, with the same PID file and data folder under `.cache/`, of the checkout
/// the command runs in (the current folder or the nearest one above with the script), never of
/// the one `ddb` was built in: a moved or second checkout starts and stops its own server. The
/// script's exit status is ddb's (`status`: 3 when it is not running).
pub fn run(action: LocalAction) -> Result<(), CommandError> {
    let here =
        std::env::current_dir().map_err(|e| CommandError::from(e).context("the current folder"))?;
    let Some(root) = here
        .ancestors()
        .find(|dir| dir.join(LOCAL_SCRIPT).is_file())
    else {
        return Err(CommandError::Said(format!(
            "no {LOCAL_SCRIPT} in {} or a folder above it: run ddb local inside a messaging-stream checkout",
            here.display()
        )));
    };
    let script = root.join(LOCAL_SCRIPT);
    // DDB_SHARED_DIR: where the PID file and the data go (default: this checkout's .cache/).
    let cache = std::env::var_os("DDB_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".cache"));
    let pidfile = cache
        .join("dynamodb-local-shared.pid")
        .display()
        .to_string();
    let args: Vec<String> = match action {
        LocalAction::Start { in_memory, port } => {
            let data = if in_memory {
                "-".to_owned()
            } else {
                cache.join("dynamodb-local-data").display().to_string()
            };
            vec!["shared".into(), port.to_string(), pidfile, data]
        }
        LocalAction::Stop => vec!["stop".into(), pidfile],
        LocalAction::Status { port } => vec!["status".into(), pidfile, port.to_string()],
    };
    let status = std::process::Command::new("bash")
        .arg(&script)
        .args(&args)
        .status()
        .map_err(|e| CommandError::from(e).context(format!("running {}", script.display())))?;
    match status.code() {
        Some(0) => Ok(()),
        code => Err(CommandError::status(
            code.and_then(|c| u8::try_from(c).ok())
                .unwrap_or(EXIT_ERROR),
            "",
        )),
    }
}
