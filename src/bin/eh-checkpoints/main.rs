//! `eh-checkpoints`: look at and fix the ownership and checkpoints of Event Hubs consumer groups
//! in a checkpoint store (blob container or table), as every Event Hubs SDK writes them.
//!
//! Exit codes: 0 on success, 1 on a service or connection failure, 2 on bad usage or a refusal.
// The options' doc comments are the `--help` text, where a URL is plain text.
#![allow(rustdoc::bare_urls)]

mod commands;
mod connect;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::{path::PathBuf, process::ExitCode, time::Duration};

#[derive(Parser)]
#[command(
    name = "eh-checkpoints",
    version,
    about = "Look at and fix the checkpoints and ownership of Event Hubs consumer groups",
    long_about = "Look at and fix the checkpoints and ownership of Event Hubs consumer groups, \
                  in a blob container (as the Python, .NET, Java, JS, Go and Rust stores keep them) \
                  or a table.\n\nExit codes: 0 success, 1 service or connection failure, \
                  2 bad usage or a refusal."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Where the records are, and which consumer group: accepted before or after the subcommand.
#[derive(Args, Clone)]
pub(crate) struct Global {
    /// A storage connection string (or AZURE_STORAGE_CONNECTION_STRING).
    #[arg(
        long,
        global = true,
        env = "AZURE_STORAGE_CONNECTION_STRING",
        hide_env_values = true
    )]
    pub(crate) connection_string: Option<String>,
    /// The storage account's URL, e.g. https://myaccount.blob.core.windows.net (with --sas, or
    /// an Entra ID credential, see --auth).
    #[arg(long, global = true)]
    pub(crate) account_url: Option<String>,
    /// A SAS for --account-url (or AZURE_STORAGE_SAS).
    #[arg(long, global = true, env = "AZURE_STORAGE_SAS", hide_env_values = true)]
    pub(crate) sas: Option<String>,
    /// The Entra ID credential for --account-url without a SAS.
    #[arg(long, global = true, value_enum, default_value_t = Auth::DeveloperTools)]
    pub(crate) auth: Auth,
    /// The blob container holding the records.
    #[arg(long, global = true, conflicts_with = "table")]
    pub(crate) container: Option<String>,
    /// The table holding the records (instead of a container).
    #[arg(long, global = true)]
    pub(crate) table: Option<String>,
    /// The blob naming layout: lowercase (Python, .NET, JS, Java) or verbatim (Go, the official
    /// Rust store).
    #[arg(long, global = true, value_enum, default_value_t = Naming::Lowercase)]
    pub(crate) naming: Naming,
    /// The Event Hubs namespace, e.g. myns.servicebus.windows.net.
    #[arg(long, global = true)]
    pub(crate) namespace: Option<String>,
    /// The event hub.
    #[arg(long, global = true)]
    pub(crate) eventhub: Option<String>,
    /// The consumer group.
    #[arg(long, global = true, default_value = "$Default")]
    pub(crate) consumer_group: String,
    /// Log what the store does (requests, retries) to stderr.
    #[arg(long, short, global = true)]
    pub(crate) verbose: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Auth {
    /// Whoever is signed in to the Azure CLI or the Azure Developer CLI.
    DeveloperTools,
    /// The managed identity of the Azure host this runs on.
    ManagedIdentity,
    /// Workload identity (AKS): AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE.
    WorkloadIdentity,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Naming {
    Lowercase,
    Verbatim,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// One row per partition: owner, claim age, expiry (by the service's clock), position.
    List {
        /// A claim not renewed for this long is expired (as the processors' ownership expiration).
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        expiration: Duration,
        /// table (the default on a terminal) or json.
        #[arg(long, value_enum)]
        output: Option<Output>,
    },
    /// Move a partition's checkpoint (rewind, or skip a poison event).
    Set {
        #[arg(long)]
        partition: String,
        #[arg(long, allow_hyphen_values = true)]
        sequence_number: i64,
        #[arg(long)]
        offset: Option<String>,
        /// Write even when the partition is owned by a live consumer.
        #[arg(long)]
        force: bool,
        /// How long a claim stays live without renewal.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        expiration: Duration,
        /// Print what would be written; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Relinquish ownership, conditionally on the versions just listed.
    Release {
        /// One partition.
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        partition: Option<String>,
        /// Every owned partition (of --owner, if given).
        #[arg(long)]
        all: bool,
        /// Only partitions this owner holds.
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Write the consumer group's checkpoints as JSON lines.
    Export {
        /// A file instead of stdout.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Write checkpoints read as JSON lines into the consumer group given here.
    Import {
        /// A file instead of stdin.
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Copy the checkpoints to another consumer group, event hub, container, account, layout or
    /// table.
    Copy(CopyArgs),
    /// Copy the checkpoints into the other blob naming layout (stop the consumers first).
    Migrate(CopyArgs),
}

/// Where a copy goes: anything not given is the same as the source.
#[derive(Args)]
pub(crate) struct CopyArgs {
    #[arg(long)]
    pub(crate) to_namespace: Option<String>,
    #[arg(long)]
    pub(crate) to_eventhub: Option<String>,
    #[arg(long)]
    pub(crate) to_consumer_group: Option<String>,
    #[arg(long, conflicts_with = "to_table")]
    pub(crate) to_container: Option<String>,
    #[arg(long)]
    pub(crate) to_table: Option<String>,
    /// Another account (the source's credential is used otherwise).
    #[arg(long, hide_env_values = true)]
    pub(crate) to_connection_string: Option<String>,
    #[arg(long, value_enum)]
    pub(crate) to_naming: Option<Naming>,
    /// Copy ownership too (claims for the same owners, conditional on the destination's records).
    #[arg(long)]
    pub(crate) ownership: bool,
    /// Writes in flight at once.
    #[arg(long, default_value_t = 16)]
    pub(crate) concurrency: usize,
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// Why a command did not succeed, and its exit code.
pub(crate) enum Failure {
    /// Bad usage or a refusal: exit 2.
    Refused(String),
    /// The service or the connection failed: exit 1.
    Store(eventhub_checkpointstore::Error),
}

impl From<eventhub_checkpointstore::Error> for Failure {
    fn from(err: eventhub_checkpointstore::Error) -> Self {
        use eventhub_checkpointstore::Error;
        match err {
            // Refused before any request: the arguments are wrong.
            Error::InvalidInput { message } => Failure::Refused(message),
            other => Failure::Store(other),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Self {
        Failure::Refused(err.to_string())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.global.verbose {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::stderr)
            .init();
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(message)) => {
            eprintln!("eh-checkpoints: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Store(err)) => {
            eprintln!("eh-checkpoints: {err}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let global = &cli.global;
    let target = connect::store(global, None)?;
    let store = target.records();
    let scope = connect::scope(global)?;
    match cli.command {
        Command::List { expiration, output } => {
            commands::list(store, &scope, expiration, output).await
        }
        Command::Set {
            partition,
            sequence_number,
            offset,
            force,
            expiration,
            dry_run,
        } => {
            let checkpoint = scope.checkpoint(partition, offset, Some(sequence_number));
            commands::set(store, &checkpoint, expiration, force, dry_run).await
        }
        Command::Release {
            partition,
            all: _,
            owner,
            dry_run,
        } => commands::release(store, &scope, partition, owner, dry_run).await,
        Command::Export { file } => commands::export(store, &scope, file).await,
        Command::Import { file, dry_run } => {
            if !dry_run {
                target.create_if_missing().await?;
            }
            commands::import(store, &scope, file, dry_run).await
        }
        Command::Copy(to) => commands::copy(global, store, &scope, &to, false).await,
        Command::Migrate(to) => commands::copy(global, store, &scope, &to, true).await,
    }
}
