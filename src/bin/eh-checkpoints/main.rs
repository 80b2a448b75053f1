//! `eh-checkpoints`: look at and fix the ownership and checkpoints of Event Hubs consumer groups
//! in a checkpoint store (blob container or table), as every Event Hubs SDK writes them.
//!
//! Exit codes: 0 on success, 1 on a service or connection failure, 2 on bad usage or a refusal.
// The options' doc comments are the `--help` text, where a URL is plain text.
#![allow(rustdoc::bare_urls)]

mod commands;
mod connect;
#[cfg(feature = "eventhubs")]
mod eventhubs;
mod output;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use std::{path::PathBuf, process::ExitCode, time::Duration};

#[derive(Parser)]
#[command(
    name = "eh-checkpoints",
    version,
    about = "Look at and fix the checkpoints and ownership of Event Hubs consumer groups",
    long_about = "Look at and fix the checkpoints and ownership of Event Hubs consumer groups, \
                  in a blob container (as the Python, .NET, Java, JS, Go and Rust stores keep them) \
                  or a table.\n\nWhere the records are is given one way: a connection string \
                  (--connection-string, or AZURE_STORAGE_CONNECTION_STRING), or an account URL \
                  (--account-url) with a SAS (--sas, or AZURE_STORAGE_SAS) or an Entra ID \
                  credential (--auth). A flag always beats the environment.\n\nExit codes: 0 \
                  success, 1 service or connection failure, 2 bad usage or a refusal."
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
    /// A storage connection string [default: AZURE_STORAGE_CONNECTION_STRING]. Not with
    /// --account-url.
    #[arg(long, global = true, help_heading = "Store")]
    pub(crate) connection_string: Option<String>,
    /// The storage account's URL, e.g. https://myaccount.blob.core.windows.net, with --sas or an
    /// Entra ID credential (--auth). Not with --connection-string.
    #[arg(long, global = true, help_heading = "Store")]
    pub(crate) account_url: Option<String>,
    /// A SAS for --account-url [default: AZURE_STORAGE_SAS].
    #[arg(long, global = true, help_heading = "Store")]
    pub(crate) sas: Option<String>,
    /// The Entra ID credential for --account-url without a SAS [default: developer-tools].
    #[arg(long, global = true, value_enum, help_heading = "Store")]
    pub(crate) auth: Option<Auth>,
    /// The blob container holding the records.
    #[arg(long, global = true, conflicts_with = "table", help_heading = "Store")]
    pub(crate) container: Option<String>,
    /// The table holding the records (instead of a container).
    #[arg(long, global = true, help_heading = "Store")]
    pub(crate) table: Option<String>,
    /// The blob naming layout: lowercase (Python, .NET, JS, Java) or verbatim (Go, the official
    /// Rust store).
    #[arg(long, global = true, value_enum, default_value_t = Naming::Lowercase, help_heading = "Store")]
    pub(crate) naming: Naming,
    /// How long one request to the store may take, retries included, before the command gives up.
    #[arg(long, global = true, default_value = "10s", value_parser = humantime::parse_duration, help_heading = "Store")]
    pub(crate) timeout: Duration,
    /// The Event Hubs namespace, e.g. myns.servicebus.windows.net [default, with feature
    /// eventhubs: that of EVENTHUBS_CONNECTION_STRING].
    #[arg(long, global = true, help_heading = "Consumer group")]
    pub(crate) namespace: Option<String>,
    /// The event hub [default, with feature eventhubs: the EntityPath of
    /// EVENTHUBS_CONNECTION_STRING].
    #[arg(long, global = true, help_heading = "Consumer group")]
    pub(crate) eventhub: Option<String>,
    /// The consumer group.
    #[arg(
        long,
        global = true,
        default_value = "$Default",
        help_heading = "Consumer group"
    )]
    pub(crate) consumer_group: String,
    /// More detail: once, one line per partition instead of a summary; twice, also the store's
    /// requests and retries (to stderr).
    #[arg(long, short, global = true, action = clap::ArgAction::Count, help_heading = "Output")]
    pub(crate) verbose: u8,
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

/// What decides whether a claim is live, for the commands that must not disturb a live fleet.
#[derive(Args, Clone, Copy)]
pub(crate) struct Liveness {
    /// A claim renewed within this long is live (as the processors' ownership expiration).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) expiration: Duration,
}

#[derive(Subcommand)]
enum Command {
    /// One row per partition: owner, claim age, expiry (by the service's clock), position.
    List {
        #[command(flatten)]
        liveness: Liveness,
        /// table (the default on a terminal) or json.
        #[arg(long, short, value_enum)]
        output: Option<Output>,
    },
    /// Move a partition's checkpoint: skip a poison event, or (with --force) rewind.
    Set {
        /// The partition whose checkpoint to set.
        #[arg(long)]
        partition: String,
        /// The sequence number of the last event processed: the consumer resumes after it.
        #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(0..))]
        sequence_number: i64,
        /// The offset of that event (none: consumers resume from the sequence number).
        #[arg(long)]
        offset: Option<String>,
        /// Write even when the partition is owned by a live consumer, or when it moves the
        /// checkpoint back (prints what it moved back).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        liveness: Liveness,
        /// Print what would be written; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Relinquish ownership, conditionally on the versions just listed.
    #[command(group(ArgGroup::new("which").required(true).args(["partition", "all"])))]
    Release {
        /// One partition.
        #[arg(long)]
        partition: Option<String>,
        /// Every owned partition (of --owner, if given).
        #[arg(long)]
        all: bool,
        /// Only partitions this owner holds.
        #[arg(long)]
        owner: Option<String>,
        /// Print what would be released; release nothing.
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
        #[command(flatten)]
        safety: Safety,
    },
    /// Copy the checkpoints to another consumer group, event hub, container, account, layout or
    /// table.
    Copy(CopyArgs),
    /// Copy the checkpoints into the other blob naming layout (stop the consumers first).
    Migrate(CopyArgs),
    /// Per partition: owner, checkpoint, the partition's newest event, and how far behind the
    /// checkpoint is, in events and in time (with feature eventhubs).
    #[cfg(feature = "eventhubs")]
    Lag(LagArgs),
}

/// Where the event hub is, and how to show the lag.
#[cfg(feature = "eventhubs")]
#[derive(Args)]
pub(crate) struct LagArgs {
    /// An Event Hubs connection string (Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…)
    /// [default: EVENTHUBS_CONNECTION_STRING]. Without one: --namespace with an Entra ID
    /// credential (--auth).
    #[arg(long, help_heading = "Event Hubs")]
    pub(crate) eventhubs_connection_string: Option<String>,
    /// Connect here instead of the namespace (an emulator, a proxy), e.g. amqp://127.0.0.1:5672.
    #[arg(long, help_heading = "Event Hubs")]
    pub(crate) eventhubs_endpoint: Option<String>,
    #[command(flatten)]
    pub(crate) liveness: Liveness,
    /// table (the default on a terminal) or json (one line per measurement with --watch).
    #[arg(long, short, value_enum)]
    pub(crate) output: Option<Output>,
    /// Measure again every INTERVAL (e.g. 5s), redrawing, until interrupted.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) watch: Option<Duration>,
}

/// How a writing command treats what is there already.
#[derive(Args, Clone, Copy)]
pub(crate) struct Safety {
    /// Write even over destination checkpoints that are further along (moving them back), and
    /// into a consumer group with live owners.
    #[arg(long)]
    pub(crate) force: bool,
    #[command(flatten)]
    pub(crate) liveness: Liveness,
    /// Print what would be written; write nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// Where a copy goes: anything not given is the same as the source.
#[derive(Args)]
pub(crate) struct CopyArgs {
    /// Another namespace.
    #[arg(long, help_heading = "Destination")]
    pub(crate) to_namespace: Option<String>,
    /// Another event hub.
    #[arg(long, help_heading = "Destination")]
    pub(crate) to_eventhub: Option<String>,
    /// Another consumer group.
    #[arg(long, help_heading = "Destination")]
    pub(crate) to_consumer_group: Option<String>,
    /// Another blob container.
    #[arg(long, conflicts_with = "to_table", help_heading = "Destination")]
    pub(crate) to_container: Option<String>,
    /// A table (the table store) instead of a container.
    #[arg(long, help_heading = "Destination")]
    pub(crate) to_table: Option<String>,
    /// Another account, by its connection string (the source's account otherwise).
    #[arg(long, help_heading = "Destination")]
    pub(crate) to_connection_string: Option<String>,
    /// The other blob naming layout.
    #[arg(long, value_enum, help_heading = "Destination")]
    pub(crate) to_naming: Option<Naming>,
    /// Copy ownership too (claims for the same owners, conditional on the destination's records).
    #[arg(long)]
    pub(crate) ownership: bool,
    /// Writes in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) concurrency: u16,
    #[command(flatten)]
    pub(crate) safety: Safety,
}

/// Why a command did not succeed, and its exit code.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad usage or a refusal: exit 2.
    Refused(String),
    /// The service or the connection failed: exit 1.
    Store(eventhub_checkpointstore::Error),
    /// Event Hubs failed or did not answer: exit 1.
    #[cfg(feature = "eventhubs")]
    EventHubs(String),
    /// Standard output was closed (`… | head`): nothing more to say.
    ClosedPipe,
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

/// Writing to stdout: a closed pipe ends the command quietly; anything else is a failure.
impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::ClosedPipe
        } else {
            Failure::Refused(format!("cannot write the output: {err}"))
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.global.verbose >= 2 {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::stderr)
            .init();
    }
    match run(cli).await {
        Ok(()) | Err(Failure::ClosedPipe) => ExitCode::SUCCESS,
        Err(Failure::Refused(message)) => {
            eprintln!("eh-checkpoints: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Store(err)) => {
            eprintln!("eh-checkpoints: {err}");
            ExitCode::from(1)
        }
        #[cfg(feature = "eventhubs")]
        Err(Failure::EventHubs(message)) => {
            eprintln!("eh-checkpoints: {message}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let global = &cli.global;
    let source = connect::source(global)?;
    let scope = connect::scope(global)?;
    // Watching runs until interrupted: no word about waiting.
    #[cfg(feature = "eventhubs")]
    if let Command::Lag(lag) = cli.command {
        return run_lag(global, &source, &scope, lag).await;
    }
    // A word after a few seconds only where a few requests are the whole command: an import or
    // a copy of many checkpoints takes longer when all is well (and shows a progress bar).
    let patient = matches!(
        cli.command,
        Command::List { .. } | Command::Set { .. } | Command::Release { .. }
    );
    let command = async {
        match cli.command {
            Command::List { liveness, output } => {
                commands::list::run(&source, &scope, liveness, output).await
            }
            Command::Set {
                partition,
                sequence_number,
                offset,
                force,
                liveness,
                dry_run,
            } => {
                let checkpoint = scope.checkpoint(partition, offset, Some(sequence_number));
                let safety = Safety {
                    force,
                    liveness,
                    dry_run,
                };
                commands::set::run(&source, &checkpoint, safety).await
            }
            Command::Release {
                partition,
                all: _,
                owner,
                dry_run,
            } => commands::release::run(global, &source, &scope, partition, owner, dry_run).await,
            Command::Export { file } => commands::export::run(&source, &scope, file).await,
            Command::Import { file, safety } => {
                commands::import::run(global, &source, &scope, file, safety).await
            }
            Command::Copy(to) => commands::copy::run(global, &source, &scope, &to, false).await,
            Command::Migrate(to) => commands::copy::run(global, &source, &scope, &to, true).await,
            #[cfg(feature = "eventhubs")]
            Command::Lag(_) => unreachable!("handled above"),
        }
    };
    if patient {
        output::with_patience(&source.describe(), global.timeout, command).await
    } else {
        command.await
    }
}

#[cfg(feature = "eventhubs")]
async fn run_lag(
    global: &Global,
    source: &connect::Store,
    scope: &eventhub_checkpointstore::Scope,
    lag: LagArgs,
) -> Result<(), Failure> {
    if lag.watch.is_some_and(|w| w < Duration::from_secs(1)) {
        return Err(Failure::Refused(
            "--watch needs an interval of at least 1s".into(),
        ));
    }
    let connection_string = lag
        .eventhubs_connection_string
        .or_else(|| std::env::var(eventhubs::CONNECTION_STRING_VAR).ok());
    let connection = eventhubs::Connection::new(
        connection_string.as_deref(),
        &scope.fully_qualified_namespace,
        &scope.eventhub_name,
        global.auth.unwrap_or(Auth::DeveloperTools),
        lag.eventhubs_endpoint,
        global.timeout,
    )?;
    let args = commands::lag::Args {
        connection,
        liveness: lag.liveness,
        output: lag.output,
        watch: lag.watch,
        read_timeout: global.timeout,
        scope,
    };
    commands::lag::run(source, args).await
}
