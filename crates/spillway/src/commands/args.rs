//! The arguments of `spillway drains …` and `spillway env …` (clap), shaped like
//! `vercel drains …`.

use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use control::DataType;
use serde::Serialize;

/// Flags shared by every management command.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Act for this team (`team_…`): every request carries `?teamId=`. Required with a team
    /// installation's token.
    #[arg(long, global = true, value_name = "ID")]
    pub team: Option<String>,
    /// Print JSON for scripts instead of a table (errors go to stderr as JSON too).
    #[arg(long, global = true)]
    pub json: bool,
    /// Without `SPILLWAY_VERCEL_TOKEN`, use this stored installation's token (`icfg_…`); needed
    /// only when several installations are stored.
    #[arg(long, global = true, value_name = "ICFG")]
    pub installation: Option<String>,
    /// The data directory holding the drain registry and the stored installations.
    #[arg(
        long,
        global = true,
        env = crate::config::DATA_DIR_VAR,
        default_value = crate::config::DEFAULT_DATA_DIR,
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
}

/// `spillway drains …`.
#[derive(Debug, Args)]
pub struct DrainsArgs {
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: DrainsCommand,
}

/// The drain subcommands.
#[derive(Debug, Subcommand)]
pub enum DrainsCommand {
    /// Create a drain on Vercel with a new secret and register it locally.
    Create(CreateArgs),
    /// List the drains on Vercel, marking the ones registered here.
    List {
        /// List the drains of the legacy log-drain API (`ld_…`, an integration installation's
        /// token only) instead, to find the ones left to replace.
        #[arg(long)]
        legacy: bool,
    },
    /// Show one drain.
    Get {
        /// The drain (`drn_…`).
        id: String,
    },
    /// Change a drain's endpoint, name or state.
    Update(UpdateArgs),
    /// Delete a drain on Vercel and remove it from the registry.
    Delete {
        /// The drain (`drn_…`, or a legacy log drain's `ld_…`).
        id: String,
    },
    /// Have Vercel send a signed sample batch to the drain's endpoint.
    Test {
        /// The drain (`drn_…`).
        id: String,
    },
}

/// Body format of deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EncodingArg {
    /// One JSON object per line (JSON types; their default).
    Ndjson,
    /// One JSON array per delivery, or OTLP/JSON for traces.
    Json,
    /// OTLP protobuf (traces only; their default).
    Proto,
}

/// `--type`: a data type by the segment of its receiver path.
fn data_type_arg() -> impl clap::builder::TypedValueParser<Value = DataType> {
    let slugs = DataType::ALL.map(DataType::slug);
    clap::builder::PossibleValuesParser::new(slugs)
        .map(|slug| slug.parse::<DataType>().expect("a possible value is a data type"))
}

/// A log source a drain can be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceArg {
    /// Build logs.
    Build,
    /// Edge functions and middleware.
    Edge,
    /// External rewrites.
    External,
    /// Firewall actions.
    Firewall,
    /// Serverless functions.
    Lambda,
    /// Redirects.
    Redirect,
    /// Static files.
    Static,
}

/// A deployment environment a drain can be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvironmentArg {
    /// Production deployments.
    Production,
    /// Preview deployments.
    Preview,
}

/// `spillway drains create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The receiver's URL; one ending in the type's receiver path (`/vercel/logs`,
    /// `/vercel/traces`, `/vercel/speed-insights`, …) gets the drain's own path key appended.
    #[arg(long)]
    pub url: String,
    /// What the drain carries.
    #[arg(long = "type", value_name = "TYPE", default_value = "logs", value_parser = data_type_arg())]
    pub data_type: DataType,
    /// Only these projects (repeatable); all projects when absent.
    #[arg(long = "project", value_name = "ID")]
    pub projects: Vec<String>,
    /// Only these log sources (repeatable; log drains only); all when absent.
    #[arg(long = "source", value_enum, value_name = "S")]
    pub sources: Vec<SourceArg>,
    /// Only these environments (repeatable; log drains only); all when absent.
    #[arg(long = "environment", value_enum, value_name = "E")]
    pub environments: Vec<EnvironmentArg>,
    /// Body format of deliveries: `ndjson` (default) or `json` for the JSON types, `proto`
    /// (default) or `json` for traces.
    #[arg(long, value_enum)]
    pub encoding: Option<EncodingArg>,
    /// Have Vercel gzip deliveries (not for traces, whose OTLP delivery has no such setting).
    #[arg(long)]
    pub gzip: bool,
    /// Keep only this fraction (0 to 1) of requests, optionally only in one environment
    /// (`production` or `preview`) and under one path, as `RATE[:ENV[:PATH]]` (repeatable, at
    /// most 10).
    #[arg(long = "sample", value_name = "RATE[:ENV[:PATH]]")]
    pub samples: Vec<String>,
    /// A header Vercel sends with every delivery and the receiver requires with this exact
    /// value, as `NAME: VALUE` (repeatable), e.g. `Authorization: Bearer …`. The value is kept
    /// in the registry and never printed.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Display name.
    #[arg(long, default_value = "spillway")]
    pub name: String,
}

/// `spillway drains update`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("change").required(true).multiple(true)))]
pub struct UpdateArgs {
    /// The drain (`drn_…`).
    pub id: String,
    /// New receiver URL (the secret and the rest of the delivery are kept).
    #[arg(long, group = "change")]
    pub url: Option<String>,
    /// Resume deliveries.
    #[arg(long, group = "change", conflicts_with = "disable")]
    pub enable: bool,
    /// Pause deliveries.
    #[arg(long, group = "change")]
    pub disable: bool,
    /// New display name.
    #[arg(long, group = "change")]
    pub name: Option<String>,
}

/// `spillway env …`.
#[derive(Debug, Args)]
pub struct EnvArgs {
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: EnvCommand,
}

/// The env subcommands.
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Create or overwrite a project's environment variable (stored encrypted).
    Set {
        /// Name.
        key: String,
        /// Value (never printed).
        value: String,
        /// The project (id or name).
        #[arg(long, value_name = "ID")]
        project: String,
        /// Environments (repeatable); all three when absent.
        #[arg(long = "target", value_enum, value_name = "T")]
        targets: Vec<TargetArg>,
    },
}

/// An environment a variable applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetArg {
    /// Production deployments.
    Production,
    /// Preview deployments.
    Preview,
    /// `vercel dev`.
    Development,
}

/// `spillway store …`: the shared PostgreSQL store that `SPILLWAY_DATABASE_URL` names.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Print JSON for scripts instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: StoreCommand,
}

/// The store subcommands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy a one-node file store (`drains.json`, `installations.json`) into the database,
    /// keeping whatever the database already has under the same ids. Safe to run again.
    Import {
        /// The data directory to copy from.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
    },
    /// Re-seal every secret under `SPILLWAY_STORE_KEY`, with the old key given in
    /// `SPILLWAY_STORE_PREVIOUS_KEYS` so the values still open.
    RotateKey,
}
