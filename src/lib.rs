//! messaging-stream: a DynamoDB Streams consumer that keeps Cruddur conversation lists current.
pub mod filter;
