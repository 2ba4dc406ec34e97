//! `ddb`: the developer CLI for the Cruddur table on DynamoDB Local (or any endpoint).
//!
//! Thin: parses the arguments ([`ddb::cli`]), starts the logs, checks the global flags
//! ([`ddb::connect`]), runs the command ([`ddb::commands`]) and turns its result into an exit
//! status ([`ddb::output::fail`]). Results go to stdout; logs and errors to stderr.

use clap::Parser as _;
use ddb::cli::Cli;
use ddb::connect::Target;
use ddb::output::{self, Output};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    messaging_stream::logging::init_tool(cli.verbose);
    let out = Output::new(cli.json, cli.raw);
    let result = match Target::from_cli(&cli) {
        Ok(target) => ddb::commands::run(cli.command, &target, &out).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => output::fail(&error, cli.verbose),
    }
}
