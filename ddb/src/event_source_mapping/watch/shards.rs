//! Which shards of which stream `ddb watch` reads, and from where: the table's stream (and a
//! re-created table's new one, whose readers replace the old stream's), shard lineage (a closed
//! parent before its children, so that a key's records stay in order across a split), the
//! starting position of the shards open at the first look, each shard's place between runs, and
//! the checkpoint file that keeps the acknowledged places across restarts. Talking to DynamoDB
//! Streams is `stream`'s; the file's format is `checkpoint`'s; reading a shard is `reader`'s.

use super::WatchError;
use crate::event_source_mapping::checkpoint::{self, Checkpoint};
use crate::event_source_mapping::mapping::Start;
use crate::event_source_mapping::stream::{self, Position, Shard, StreamError};
use aws_sdk_dynamodbstreams::Client;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Where a shard's reading resumes between runs.
#[derive(Debug, Clone)]
pub(super) struct ShardState {
    pub(super) position: Position,
    pub(super) iterator: Option<String>,
    pub(super) finished: bool,
}

impl Default for ShardState {
    /// A shard not seen before: read from its start.
    fn default() -> Self {
        Self {
            position: Position::TrimHorizon,
            iterator: None,
            finished: false,
        }
    }
}

#[derive(Debug, Default)]
struct Known {
    /// The shards have been listed once (LATEST applies only to that first look).
    discovered: bool,
    states: HashMap<String, ShardState>,
}

/// The stream followed and its shards' places.
pub(super) struct Shards {
    streams: Client,
    table: String,
    from: Start,
    checkpoint: Option<PathBuf>,
    /// The stream followed now; a re-created table has a new one.
    stream_arn: Mutex<String>,
    known: Mutex<Known>,
    /// Bumped when the table's stream changes: readers of the old one stop.
    generation: AtomicU64,
    /// Each shard's acknowledged position, for the checkpoint file.
    positions: Mutex<HashMap<String, Position>>,
}

impl Shards {
    /// Finds `table`'s stream. With a checkpoint file of the same stream, each shard resumes where
    /// it was acknowledged.
    pub(super) async fn open(
        streams: Client,
        table: &str,
        from: Start,
        checkpoint: Option<PathBuf>,
    ) -> Result<Self, WatchError> {
        let stream_arn = stream::stream_arn(&streams, table).await?;
        let (known, positions) = match &checkpoint {
            Some(path) => resume(path, &stream_arn)?,
            None => Default::default(),
        };
        Ok(Self {
            streams,
            table: table.to_owned(),
            from,
            checkpoint,
            stream_arn: Mutex::new(stream_arn),
            known: Mutex::new(known),
            generation: AtomicU64::new(0),
            positions: Mutex::new(positions),
        })
    }

    /// The stream followed now.
    pub(super) fn stream_arn(&self) -> String {
        self.stream_arn.lock().expect("stream arn lock").clone()
    }

    /// The stream's generation now (see [`Shards::is_current`]).
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Whether a reader started at `generation` still reads the stream followed.
    pub(super) fn is_current(&self, generation: u64) -> bool {
        generation == self.generation()
    }

    /// Where `shard_id`'s reading resumes.
    pub(super) fn state(&self, shard_id: &str) -> ShardState {
        self.known
            .lock()
            .expect("shard states lock")
            .states
            .get(shard_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Lists the shards and returns those to read now: not finished, and whose parent is finished
    /// or gone from the stream (trimmed). Following the stream (not `once`), first follows a
    /// re-created table, and a failed look is logged and tried again later.
    pub(super) async fn discover(&self, once: bool) -> Result<Vec<Shard>, WatchError> {
        if !once {
            if let Err(error) = self.follow_new_stream().await {
                tracing::warn!(error = %error, "looking for the table's stream failed; will try again");
            }
        }
        let arn = self.stream_arn();
        let listed = match stream::shards(&self.streams, &arn).await {
            Ok(listed) => listed,
            Err(error) if !once => {
                tracing::warn!(error = %error, "listing the stream's shards failed; will try again");
                return Ok(Vec::new());
            }
            Err(error) => return Err(error.into()),
        };
        let mut known = self.known.lock().expect("shard states lock");
        let first_look = !std::mem::replace(&mut known.discovered, true);
        for shard in &listed {
            known.states.entry(shard.id.clone()).or_insert_with(|| {
                // LATEST applies to the shards open at the first look; closed ones are history, and
                // shards that appear later are read from their start.
                let (position, finished) = match (first_look, self.from) {
                    (true, Start::Latest) => (Position::Latest, shard.closed),
                    _ => (Position::TrimHorizon, false),
                };
                ShardState {
                    position,
                    iterator: None,
                    finished,
                }
            });
        }
        Ok(readable(&listed, |id| {
            known.states.get(id).is_some_and(|s| s.finished)
        }))
    }

    /// Follows a re-created table: when the table's newest stream is not the one followed, says so
    /// and starts on the new one from its trim horizon (the old stream's readers stop).
    async fn follow_new_stream(&self) -> Result<(), WatchError> {
        let newest = match stream::stream_arn(&self.streams, &self.table).await {
            Ok(arn) => arn,
            // Dropped and not (yet) re-created: keep trying the old stream until it is.
            Err(StreamError::NoStream { .. }) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        let old = {
            let mut current = self.stream_arn.lock().expect("stream arn lock");
            if *current == newest {
                return Ok(());
            }
            std::mem::replace(&mut *current, newest.clone())
        };
        tracing::warn!(table = %self.table, old = %old, new = %newest, "the table was re-created: following its new stream from the trim horizon");
        eprintln!(
            "ddb watch: table {} was re-created: following its new stream {newest} from its trim horizon",
            self.table
        );
        self.generation.fetch_add(1, Ordering::SeqCst);
        {
            let mut known = self.known.lock().expect("shard states lock");
            known.states.clear();
            // Not a first look: the new stream is read from its trim horizon even with LATEST.
            known.discovered = true;
        }
        self.positions.lock().expect("positions lock").clear();
        self.save_checkpoint()?;
        Ok(())
    }

    /// Keeps where a shard's reader stopped, for its next reader, and acknowledges it.
    pub(super) fn put_away(&self, shard_id: &str, state: ShardState) -> Result<(), WatchError> {
        let (position, finished) = (state.position.clone(), state.finished);
        self.known
            .lock()
            .expect("shard states lock")
            .states
            .insert(shard_id.to_owned(), state);
        self.acknowledge(shard_id, position, finished)
    }

    /// Records a shard's acknowledged position and writes the checkpoint file, if there is one.
    pub(super) fn acknowledge(
        &self,
        shard_id: &str,
        position: Position,
        finished: bool,
    ) -> Result<(), WatchError> {
        if self.checkpoint.is_none() {
            return Ok(());
        }
        {
            let mut positions = self.positions.lock().expect("positions lock");
            if finished {
                positions.remove(shard_id);
            } else {
                positions.insert(shard_id.to_owned(), position);
            }
        }
        if finished {
            self.known
                .lock()
                .expect("shard states lock")
                .states
                .entry(shard_id.to_owned())
                .and_modify(|s| s.finished = true);
        }
        self.save_checkpoint()
    }

    fn save_checkpoint(&self) -> Result<(), WatchError> {
        let Some(path) = &self.checkpoint else {
            return Ok(());
        };
        let positions = self.positions.lock().expect("positions lock").clone();
        let finished: Vec<String> = self
            .known
            .lock()
            .expect("shard states lock")
            .states
            .iter()
            .filter(|(_, s)| s.finished)
            .map(|(id, _)| id.clone())
            .collect();
        let mut shards: HashMap<String, Option<Position>> =
            positions.into_iter().map(|(id, p)| (id, Some(p))).collect();
        for id in finished {
            shards.insert(id, None);
        }
        checkpoint::save(
            path,
            &Checkpoint {
                stream_arn: self.stream_arn(),
                shards,
            },
        )?;
        Ok(())
    }
}

/// The shards' places saved in the checkpoint file at `path`, if it is of the stream `stream_arn`
/// (a file of another stream, from before the table was re-created, is ignored).
fn resume(path: &Path, stream_arn: &str) -> Result<(Known, HashMap<String, Position>), WatchError> {
    let mut known = Known::default();
    let mut positions = HashMap::new();
    let Some(saved) = checkpoint::load(path)? else {
        return Ok((known, positions));
    };
    if saved.stream_arn != stream_arn {
        tracing::warn!(checkpoint = %path.display(), saved = %saved.stream_arn, now = %stream_arn, "the checkpoint is of another stream (the table was re-created): starting afresh");
        return Ok((known, positions));
    }
    known.discovered = true;
    for (id, position) in saved.shards {
        let finished = position.is_none();
        known.states.insert(
            id.clone(),
            ShardState {
                position: position.clone().unwrap_or(Position::TrimHorizon),
                iterator: None,
                finished,
            },
        );
        positions.insert(id, position.unwrap_or(Position::TrimHorizon));
    }
    Ok((known, positions))
}

/// The shards to read now: not finished, and whose parent is finished or gone from the stream
/// (trimmed), so that a key's records are always read in order across a split.
fn readable(listed: &[Shard], finished: impl Fn(&str) -> bool) -> Vec<Shard> {
    let ids: HashSet<&str> = listed.iter().map(|s| s.id.as_str()).collect();
    listed
        .iter()
        .filter(|shard| !finished(&shard.id))
        .filter(|shard| {
            shard
                .parent_id
                .as_deref()
                .is_none_or(|parent| !ids.contains(parent) || finished(parent))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parent: Option<&str>) -> Shard {
        Shard {
            id: id.to_owned(),
            parent_id: parent.map(str::to_owned),
            closed: false,
        }
    }

    fn ids(shards: Vec<Shard>) -> Vec<String> {
        shards.into_iter().map(|s| s.id).collect()
    }

    #[test]
    fn children_wait_for_their_parent_and_orphans_do_not() {
        let listed = [
            shard("parent", None),
            shard("child-a", Some("parent")),
            shard("child-b", Some("parent")),
            shard("orphan", Some("trimmed-away")),
        ];
        assert_eq!(ids(readable(&listed, |_| false)), ["parent", "orphan"]);
        assert_eq!(
            ids(readable(&listed, |id| id == "parent")),
            ["child-a", "child-b", "orphan"]
        );
        assert!(readable(&listed, |_| true).is_empty());
    }
}
