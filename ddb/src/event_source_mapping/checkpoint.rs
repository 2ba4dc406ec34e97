//! `ddb watch --checkpoint FILE`: each shard's acknowledged position, so that a restart resumes
//! where the last run stopped (what was acknowledged is not sent again), as Lambda keeps an event
//! source mapping's place. One small JSON file, rewritten whole (write, then rename) after every
//! settled batch:
//!
//! ```json
//! {"stream_arn": "arn:...", "shards": {"shardId-1": {"after": "000123"}, "shardId-0": null}}
//! ```
//!
//! A shard's value is where reading resumes (`{"after": seq}`, `{"at": seq}`, `"trim_horizon"` or
//! `"latest"`), or `null` once a closed shard has been read to its end. A file of another stream
//! (the table was re-created) is ignored.

use super::stream::Position;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read the checkpoint file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the checkpoint file {path} is not a checkpoint ({source}): remove it to start afresh"
    )]
    Format {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write the checkpoint file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub stream_arn: String,
    /// `None`: the shard is finished.
    pub shards: HashMap<String, Option<Position>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Saved {
    TrimHorizon,
    Latest,
    At(String),
    After(String),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct File {
    stream_arn: String,
    shards: HashMap<String, Option<Saved>>,
}

/// The checkpoint at `path`, or `None` if there is no file yet.
pub fn load(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CheckpointError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    let file: File = serde_json::from_str(&text).map_err(|source| CheckpointError::Format {
        path: path.to_owned(),
        source,
    })?;
    let shards = file
        .shards
        .into_iter()
        .map(|(id, saved)| {
            let position = saved.map(|saved| match saved {
                Saved::TrimHorizon => Position::TrimHorizon,
                Saved::Latest => Position::Latest,
                Saved::At(seq) => Position::At(seq),
                Saved::After(seq) => Position::After(seq),
            });
            (id, position)
        })
        .collect();
    Ok(Some(Checkpoint {
        stream_arn: file.stream_arn,
        shards,
    }))
}

/// Writes `checkpoint` to `path` (a temporary file renamed over it: never half a file).
pub fn save(path: &Path, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
    let file = File {
        stream_arn: checkpoint.stream_arn.clone(),
        shards: checkpoint
            .shards
            .iter()
            .map(|(id, position)| {
                let saved = position.as_ref().map(|position| match position {
                    Position::TrimHorizon => Saved::TrimHorizon,
                    Position::Latest => Saved::Latest,
                    Position::At(seq) => Saved::At(seq.clone()),
                    Position::After(seq) => Saved::After(seq.clone()),
                });
                (id.clone(), saved)
            })
            .collect(),
    };
    let write_error = |source| CheckpointError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_error)?;
    }
    let temporary = path.with_extension("tmp");
    let text = serde_json::to_string(&file).expect("a checkpoint serialises");
    std::fs::write(&temporary, text).map_err(write_error)?;
    std::fs::rename(&temporary, path).map_err(write_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp.json");
        assert!(load(&path).unwrap().is_none());
        let checkpoint = Checkpoint {
            stream_arn: "arn:s".into(),
            shards: HashMap::from([
                ("a".to_owned(), Some(Position::After("0042".into()))),
                ("b".to_owned(), None),
                ("c".to_owned(), Some(Position::TrimHorizon)),
            ]),
        };
        save(&path, &checkpoint).unwrap();
        assert_eq!(load(&path).unwrap().unwrap(), checkpoint);
        std::fs::write(&path, "nope").unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("remove it"));
    }
}
