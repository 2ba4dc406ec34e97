//! The `ddb` binary as the tests run it. Cargo names a binary to the integration tests of its own
//! package only (`CARGO_BIN_EXE_<name>`), and `ddb` is another package of the workspace: it is
//! found where cargo puts it, beside the test executables' `deps/` folder. `cargo test` of the
//! workspace (make test) builds it with the tests; a missing or stale one fails loudly with the fix.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The path of the workspace's `ddb` binary, built from the current sources.
pub fn ddb() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/ddb
    let folder = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps");
    let path = folder
        .join("ddb")
        .with_extension(std::env::consts::EXE_EXTENSION);
    let fix = "build it: `cargo build -p ddb` (or run the whole workspace's tests: `make test`)";
    let built = std::fs::metadata(&path)
        .and_then(|meta| meta.modified())
        .unwrap_or_else(|_| panic!("{} is not there: {fix}", path.display()));
    if let Some(source) = newest_source(&crate::workspace_root()) {
        assert!(
            source.1 <= built,
            "{} is older than {}: {fix}",
            path.display(),
            source.0.display()
        );
    }
    path
}

/// The newest Rust source of the two packages the binary is built from (the Lambda's `src/` and
/// `ddb/src/`).
fn newest_source(root: &Path) -> Option<(PathBuf, SystemTime)> {
    let mut newest: Option<(PathBuf, SystemTime)> = None;
    let mut folders = vec![root.join("src"), root.join("ddb/src")];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                if let Ok(modified) = entry.metadata().and_then(|meta| meta.modified()) {
                    if newest.as_ref().is_none_or(|(_, time)| modified > *time) {
                        newest = Some((path, modified));
                    }
                }
            }
        }
    }
    newest
}
