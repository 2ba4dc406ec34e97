//! The event source mapping emulator: what Lambda's poller does between a DynamoDB stream and a
//! function, locally (`ddb watch`). It owns reading the template's mapping (`mapping`), reading the
//! stream (`stream`), building Lambda's record JSON (`lambda_record`), Lambda's batching and retry
//! rules (`batching`), the on-failure destination (`failures`; read back for `ddb redrive` by
//! `failure_records`, with `hydrate` fetching a range from the stream again), the shards'
//! positions (`checkpoint`), and the trigger that ties them together (`watch`: the loop, with its
//! parts in `watch/`: which shards to read, reading one, invoking, the counts). It does not own the
//! function (any `watch::Function`; the handler in practice) nor the table's data.

pub mod batching;
pub mod checkpoint;
pub mod failure_records;
pub mod failures;
pub mod hydrate;
pub mod lambda_record;
pub mod mapping;
pub mod stream;
pub mod watch;
