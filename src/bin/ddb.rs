//! `ddb`: the developer CLI for the Cruddur table on DynamoDB Local (or any endpoint).
//!
//! Thin: parses arguments, builds clients from the same [`Config`] as the Lambda, and calls the
//! library. Results go to stdout; logs go to stderr.

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use messaging_stream::local::{queries, replay, schema, seed};
use messaging_stream::plan::Item;
use messaging_stream::{App, Config};
use std::path::PathBuf;
use std::process::ExitCode;

/// Where the Makefile runs DynamoDB Local.
const LOCAL_ENDPOINT: &str = "http://127.0.0.1:8000";

#[derive(Parser)]
#[command(
    name = "ddb",
    version,
    about = "Run the Cruddur messaging table and its stream consumer locally"
)]
struct Cli {
    /// DynamoDB endpoint [env: AWS_ENDPOINT_URL_DYNAMODB; default: http://127.0.0.1:8000]
    #[arg(long, global = true)]
    endpoint: Option<String>,
    /// Table name [env: TABLE_NAME; default: cruddur-messages]
    #[arg(long, global = true)]
    table: Option<String>,
    /// Print JSON lines instead of a table
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the table (pk/sk, the group GSI, a NEW_IMAGE stream); an existing table is fine.
    SchemaLoad,
    /// Write users, conversations and messages (idempotent).
    Seed,
    /// Pattern B: a user's conversation list, newest first.
    Conversations {
        user_uuid: String,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
    },
    /// Pattern A: a group's messages, newest first.
    Messages {
        group_uuid: String,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
    },
    /// Run the Lambda handler in-process on event files; prints each batch response as a JSON line.
    Replay {
        /// Lambda event JSON files, one event per file.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

impl Cli {
    /// The Lambda's config, with the flags over the environment and the local endpoint as the default.
    fn config(&self) -> Result<Config> {
        let mut config = Config::from_env()?;
        if let Some(endpoint) = &self.endpoint {
            config.endpoint_url = Some(endpoint.clone());
        }
        config
            .endpoint_url
            .get_or_insert_with(|| LOCAL_ENDPOINT.to_owned());
        if let Some(table) = &self.table {
            config.table_name = table.clone();
        }
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    lambda_runtime::tracing::init_default_subscriber_with_writer(std::io::stderr);
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ddb: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let config = cli.config()?;
    let endpoint = config.endpoint_url.clone().unwrap_or_default();
    match cli.command {
        Command::SchemaLoad => {
            let client = messaging_stream::aws::dynamodb_client(&config).await;
            let created =
                schema::create_table(&client, &config.table_name, &config.group_index_name)
                    .await
                    .with_context(|| {
                        format!("creating table {} at {endpoint}", config.table_name)
                    })?;
            println!("table {}: {:?}", config.table_name, created);
        }
        Command::Seed => {
            let client = messaging_stream::aws::dynamodb_client(&config).await;
            let seeded = seed::seed(&client, &config.table_name)
                .await
                .with_context(|| format!("seeding table {} at {endpoint}", config.table_name))?;
            println!(
                "seeded {}: {} messages, {} group rows ({} already there)",
                config.table_name, seeded.messages, seeded.group_rows, seeded.skipped
            );
        }
        Command::Conversations { user_uuid, limit } => {
            let client = messaging_stream::aws::dynamodb_client(&config).await;
            let rows = queries::conversations(
                &client,
                &config.table_name,
                &user_uuid,
                limit.map(|l| l as usize),
            )
            .await?;
            print_items(
                &rows,
                cli.json,
                &["sk", "user_handle", "message_group_uuid", "message"],
            )?;
        }
        Command::Messages { group_uuid, limit } => {
            let client = messaging_stream::aws::dynamodb_client(&config).await;
            let items = queries::messages(
                &client,
                &config.table_name,
                &group_uuid,
                limit.map(|l| l as usize),
            )
            .await?;
            print_items(&items, cli.json, &["sk", "user_handle", "message"])?;
        }
        Command::Replay { files } => {
            let app = App::from_config(config).await;
            for file in files {
                let response = replay::replay_file(&app, &file).await?;
                println!("{}", serde_json::to_string(&response)?);
            }
        }
    }
    Ok(())
}

/// Prints items as JSON lines (plain attribute values) or as aligned columns for a person.
fn print_items(items: &[Item], json: bool, columns: &[&str]) -> Result<()> {
    if json {
        for item in items {
            let value: serde_json::Value = serde_dynamo::from_item(item.clone())?;
            println!("{value}");
        }
        return Ok(());
    }
    let cell = |item: &Item, column: &str| -> String {
        item.get(column)
            .and_then(|v| v.as_s().ok().cloned())
            .unwrap_or_default()
    };
    let widths: Vec<usize> = columns
        .iter()
        .map(|c| {
            items
                .iter()
                .map(|i| cell(i, c).chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(columns.iter().map(|c| c.to_string()).collect());
    for item in items {
        line(columns.iter().map(|c| cell(item, c)).collect());
    }
    Ok(())
}
