//! `spillway drains …` and `spillway env set`: drain management against the Vercel REST API,
//! shaped like `vercel drains …`, keeping the local drain registry (`<data dir>/drains.json`)
//! in step.
//!
//! The token comes from `SPILLWAY_VERCEL_TOKEN` (never printed), the API from
//! `SPILLWAY_VERCEL_API_URL` (default `https://api.vercel.com`). Output is a table by default and
//! JSON with `--json`; a drain secret is only ever shown redacted. Exit codes: see [`Exit`].

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error_chain;
use crate::integration::INSTALLATIONS_FILE;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use control::installations::{Installation, InstallationStatus, InstallationStore};
use control::model::{
    log_schemas, Compression, CreateDrain, DeliveryRequest, Drain, DrainSecret, DrainStatus,
    EnvTarget, EnvType, EnvVar, ProjectScope, TestDrain, UpdateDrain,
};
use control::registry::{generate_path_key, generate_secret, DeliveryHeader};
use control::{
    ClientConfig, ControlError, DrainEntry, DrainKind, DrainRegistry, RegistryError, Secret,
    VercelClient, DEFAULT_BASE_URL,
};
use serde::Serialize;
use serde_json::json;

/// The variable holding the Vercel API token.
pub const TOKEN_VAR: &str = "SPILLWAY_VERCEL_TOKEN";
/// The variable overriding the Vercel API's base URL.
pub const API_URL_VAR: &str = "SPILLWAY_VERCEL_API_URL";
/// The registry's file name inside the data directory.
pub const REGISTRY_FILE: &str = "drains.json";
/// A drain endpoint ending in this path gets the drain's path key appended.
const RECEIVER_PATH: &str = "/vercel/logs";
/// Page size and page bound of `drains list`.
const LIST_PAGE_SIZE: u32 = 100;
const LIST_MAX_PAGES: u32 = 100;
/// The id prefix of the legacy log-drain API's drains.
const LEGACY_PREFIX: &str = "ld_";

/// The exit codes of these commands (clap's own usage errors exit with 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done.
    Ok = 0,
    /// Usage or configuration error (bad arguments, an unusable `SPILLWAY_VERCEL_API_URL`).
    Usage = 2,
    /// The Vercel API refused or failed (not found, bad request, rate limited after retries,
    /// unreachable, a test delivery the endpoint did not accept).
    Api = 3,
    /// Authentication or authorisation: no token, `401`, `403` (wrong team, disabled
    /// installation).
    Auth = 4,
    /// Local failure: the drain registry could not be read or written.
    Local = 5,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

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
        env = "SPILLWAY_DATA_DIR",
        default_value = "./spillway-data",
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
    /// One JSON object per line.
    Ndjson,
    /// One JSON array per delivery.
    Json,
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
    /// The receiver's URL; one ending in `/vercel/logs` gets the drain's own path key appended.
    #[arg(long)]
    pub url: String,
    /// Only these projects (repeatable); all projects when absent.
    #[arg(long = "project", value_name = "ID")]
    pub projects: Vec<String>,
    /// Only these log sources (repeatable); all when absent.
    #[arg(long = "source", value_enum, value_name = "S")]
    pub sources: Vec<SourceArg>,
    /// Only these environments (repeatable); all when absent.
    #[arg(long = "environment", value_enum, value_name = "E")]
    pub environments: Vec<EnvironmentArg>,
    /// Body format of deliveries.
    #[arg(long, value_enum, default_value_t = EncodingArg::Ndjson)]
    pub encoding: EncodingArg,
    /// Have Vercel gzip deliveries.
    #[arg(long)]
    pub gzip: bool,
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

/// Why a command failed.
#[derive(Debug)]
enum Failure {
    MissingToken,
    /// An argument clap could not check without echoing a credential.
    Usage(String),
    Api(ControlError),
    Registry(RegistryError),
    /// The drain was created on Vercel but could not be registered.
    Unregistered {
        id: String,
        deleted_again: bool,
        source: RegistryError,
    },
    TestFailed {
        status: Option<u16>,
        error: Option<String>,
        endpoint: Option<String>,
    },
    EnvRefused {
        code: String,
        message: String,
    },
    Runtime(std::io::Error),
}

impl From<ControlError> for Failure {
    fn from(e: ControlError) -> Failure {
        Failure::Api(e)
    }
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Failure {
        Failure::Registry(e)
    }
}

impl Failure {
    fn exit(&self) -> Exit {
        match self {
            Failure::MissingToken => Exit::Auth,
            Failure::Usage(_) | Failure::Api(ControlError::Config(_)) => Exit::Usage,
            Failure::Api(ControlError::InstallationDisabled { .. }) => Exit::Auth,
            Failure::Api(e) if matches!(e.status(), Some(401 | 403)) => Exit::Auth,
            Failure::Api(_) | Failure::TestFailed { .. } | Failure::EnvRefused { .. } => Exit::Api,
            Failure::Registry(_) | Failure::Unregistered { .. } | Failure::Runtime(_) => {
                Exit::Local
            }
        }
    }

    fn message(&self) -> String {
        match self {
            Failure::MissingToken => {
                format!("{TOKEN_VAR} is not set and no single enabled installation is stored")
            }
            Failure::Usage(message) => message.clone(),
            // Said the way every other API error says it: status, Vercel's code, its message.
            Failure::Api(ControlError::InstallationDisabled { message }) => {
                format!("Vercel API answered 403 integration_configuration_disabled: {message}")
            }
            Failure::Api(e) => error_chain(e),
            Failure::Registry(e) => error_chain(e),
            Failure::Unregistered { id, deleted_again, source } => {
                let then = if *deleted_again {
                    "it was deleted on Vercel again".to_owned()
                } else {
                    format!(
                        "it still exists on Vercel; remove it with `spillway drains delete {id}`"
                    )
                };
                format!("drain {id} was created but could not be registered ({then}): {source}")
            }
            Failure::TestFailed { status, error, endpoint } => format!(
                "the test delivery to {} failed (status {}): {}",
                endpoint.as_deref().unwrap_or("the endpoint"),
                status.map_or_else(|| "none".to_owned(), |s| s.to_string()),
                error.as_deref().unwrap_or("no details")
            ),
            Failure::EnvRefused { code, message } => {
                format!("Vercel refused the variable ({code}): {message}")
            }
            Failure::Runtime(e) => format!("cannot start the async runtime: {e}"),
        }
    }

    fn hint(&self, team_given: bool) -> Option<&'static str> {
        match self {
            Failure::MissingToken => Some(
                "export a Vercel token as SPILLWAY_VERCEL_TOKEN, or install the integration \
                     (with several installations stored, pass --installation)",
            ),
            Failure::Api(ControlError::InstallationDisabled { .. }) => {
                Some("the integration was disabled in Vercel; reinstall it")
            }
            Failure::Api(ControlError::RateLimited { .. }) => Some("rate limited; try again later"),
            Failure::Api(e) => match (e.status(), e.code()) {
                (Some(403), Some("forbidden")) if !team_given => {
                    Some("is this a team installation? pass --team")
                }
                (Some(403), _) => Some("check that the token may act for this team (--team)"),
                (Some(401), _) => Some("the token is invalid or expired"),
                (Some(404), _) if !team_given => {
                    Some("no such drain for this token; a team's drain needs --team")
                }
                (Some(404), _) => Some("no such drain for this token and team"),
                (Some(400), Some("drain_enable_not_allowed")) => {
                    Some("Vercel disabled this drain; create a new one instead")
                }
                _ if e.status().is_none() => {
                    Some("is SPILLWAY_VERCEL_API_URL right and the network up?")
                }
                _ => None,
            },
            Failure::TestFailed { .. } => {
                Some("is the receiver running and configured with this drain's secret?")
            }
            Failure::Registry(_) | Failure::Unregistered { .. } => {
                Some("check the data directory (--data-dir or SPILLWAY_DATA_DIR)")
            }
            Failure::Usage(_) | Failure::EnvRefused { .. } | Failure::Runtime(_) => None,
        }
    }

    fn report(&self, json_output: bool, team_given: bool) {
        let hint = self.hint(team_given);
        if json_output {
            let (status, code) = match self {
                Failure::Api(e) => (e.status(), e.code().map(str::to_owned)),
                Failure::TestFailed { status, .. } => (*status, Some("test_failed".to_owned())),
                Failure::EnvRefused { code, .. } => (None, Some(code.clone())),
                _ => (None, None),
            };
            let error = json!({"error": {
                "exit": self.exit() as u8,
                "status": status,
                "code": code,
                "message": self.message(),
                "hint": hint,
            }});
            eprintln!("{error}");
        } else {
            eprintln!("spillway: {}", self.message());
            if let Some(hint) = hint {
                eprintln!("hint: {hint}");
            }
        }
    }
}

/// Runs `spillway drains …`; `env` looks up environment variables.
pub fn run_drains(args: DrainsArgs, env: &dyn Fn(&str) -> Option<String>) -> ExitCode {
    let common = args.common.clone();
    let registry = DrainRegistry::new(args.common.data_dir.join(REGISTRY_FILE));
    finish(&common, run_async(&common, env, |client| drains(client, registry, args, common.json)))
}

/// Runs `spillway env …`; `env` looks up environment variables.
pub fn run_env(args: EnvArgs, env: &dyn Fn(&str) -> Option<String>) -> ExitCode {
    let common = args.common.clone();
    finish(
        &common,
        run_async(&common, env, |client| env_command(client, args.command, common.json)),
    )
}

fn finish(common: &CommonArgs, result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => Exit::Ok.into(),
        Err(failure) => {
            failure.report(common.json, common.team.is_some());
            failure.exit().into()
        }
    }
}

fn run_async<F, Fut>(
    common: &CommonArgs,
    env: &dyn Fn(&str) -> Option<String>,
    command: F,
) -> Result<(), Failure>
where
    F: FnOnce(VercelClient) -> Fut,
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    let (token, team_id, installation) = credentials(common, env)?;
    let client = VercelClient::new(ClientConfig {
        base_url: env(API_URL_VAR).unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
        token: Some(token),
        team_id,
        ..ClientConfig::default()
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::Runtime)?;
    let result = runtime.block_on(command(client));
    if let (Err(Failure::Api(ControlError::InstallationDisabled { .. })), Some(id)) =
        (&result, &installation)
    {
        // A state of the installation, not a passing error: remember it, so it is not used again.
        let store = InstallationStore::new(common.data_dir.join(INSTALLATIONS_FILE));
        let _ = store.modify(id, |i| i.status = InstallationStatus::Disabled);
    }
    result
}

/// The token to act with: `SPILLWAY_VERCEL_TOKEN`, else the stored installation (the one given
/// with `--installation`, or the only enabled one), whose team applies unless `--team` is given.
/// Also returns the installation used, if any.
fn credentials(
    common: &CommonArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Secret, Option<String>, Option<String>), Failure> {
    if let Some(token) = env(TOKEN_VAR).filter(|t| !t.is_empty()) {
        return Ok((Secret::new(token), common.team.clone(), None));
    }
    let store = InstallationStore::new(common.data_dir.join(INSTALLATIONS_FILE));
    let enabled: Vec<Installation> = store
        .load()
        .map_err(Failure::Registry)?
        .into_iter()
        .filter(|i| i.status == InstallationStatus::Enabled)
        .filter(|i| common.installation.as_ref().is_none_or(|id| *id == i.configuration_id))
        .collect();
    match <[Installation; 1]>::try_from(enabled) {
        Ok([installation]) => {
            let team = common.team.clone().or(installation.team_id);
            let id = installation.configuration_id;
            Ok((installation.access_token, team, Some(id)))
        }
        Err(_) => Err(Failure::MissingToken),
    }
}

async fn drains(
    client: VercelClient,
    registry: DrainRegistry,
    args: DrainsArgs,
    json_output: bool,
) -> Result<(), Failure> {
    match args.command {
        DrainsCommand::Create(create) => {
            let view = create_drain(&client, &registry, create).await?;
            print_drain(&view, json_output);
        }
        DrainsCommand::List { legacy: true } => {
            let views: Vec<LegacyView> =
                client.list_log_drains().await?.iter().map(LegacyView::new).collect();
            print_legacy_list(&views, json_output);
        }
        DrainsCommand::List { legacy: false } => {
            let drains = client.list_all_drains(None, LIST_PAGE_SIZE, LIST_MAX_PAGES).await?;
            let entries: HashMap<String, DrainEntry> =
                registry.load()?.into_iter().map(|e| (e.id.clone(), e)).collect();
            let views: Vec<DrainView> =
                drains.iter().map(|d| DrainView::new(d, entries.get(&d.id))).collect();
            print_list(&views, json_output);
        }
        DrainsCommand::Get { id } => {
            let drain = client.get_drain(&id).await?;
            let entry = registry.get(&id)?;
            print_drain(&DrainView::new(&drain, entry.as_ref()), json_output);
        }
        DrainsCommand::Update(update) => {
            let view = update_drain(&client, &registry, update).await?;
            print_drain(&view, json_output);
        }
        DrainsCommand::Delete { id } => delete_drain(&client, &registry, &id, json_output).await?,
        DrainsCommand::Test { id } => test_drain(&client, &registry, &id, json_output).await?,
    }
    Ok(())
}

/// The endpoint Vercel delivers to: `url`, plus `/<path key>` when it ends in `/vercel/logs`.
pub fn drain_endpoint(url: &str, path_key: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    if trimmed.ends_with(RECEIVER_PATH) {
        format!("{trimmed}/{path_key}")
    } else {
        url.to_owned()
    }
}

fn filter(sources: &[SourceArg], environments: &[EnvironmentArg]) -> Option<serde_json::Value> {
    if sources.is_empty() && environments.is_empty() {
        return None;
    }
    let mut basic = json!({"type": "basic"});
    if !sources.is_empty() {
        basic["log"] = json!({"sources": sources});
    }
    if !environments.is_empty() {
        basic["deployment"] = json!({"environments": environments});
    }
    Some(json!({"version": "v2", "filter": basic}))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

async fn create_drain(
    client: &VercelClient,
    registry: &DrainRegistry,
    args: CreateArgs,
) -> Result<DrainView, Failure> {
    let headers = delivery_headers(&args.headers)?;
    let path_key = generate_path_key()?;
    let secret = generate_secret()?;
    let encoding = match args.encoding {
        EncodingArg::Ndjson => control::model::Encoding::Ndjson,
        EncodingArg::Json => control::model::Encoding::Json,
    };
    let mut delivery = DeliveryRequest::http(drain_endpoint(&args.url, &path_key), encoding);
    delivery.compression = if args.gzip { Compression::Gzip } else { Compression::None };
    delivery.secret = Some(secret.clone());
    delivery.headers = header_map(&headers);
    let request = CreateDrain {
        name: args.name,
        projects: Some(if args.projects.is_empty() {
            ProjectScope::All
        } else {
            ProjectScope::Some
        }),
        project_ids: args.projects,
        schemas: log_schemas(),
        delivery,
        sampling: None,
        filter: filter(&args.sources, &args.environments),
    };
    let drain = client.create_drain(&request).await?;
    let entry = DrainEntry {
        id: drain.id.clone(),
        path_key,
        secret,
        team_id: drain.team_id.clone().or_else(|| client.team_id().map(str::to_owned)),
        kind: DrainKind::SelfServed,
        created_at_ms: drain.created_at.unwrap_or_else(now_ms),
        configuration_id: None,
        integration_secret: false,
        headers,
    };
    if let Err(source) = registry.insert(entry.clone()) {
        // A drain whose secret is nowhere but on Vercel is of no use to the receiver.
        let deleted_again = client.delete_drain(&drain.id).await.is_ok();
        return Err(Failure::Unregistered { id: drain.id, deleted_again, source });
    }
    Ok(DrainView::new(&drain, Some(&entry)))
}

/// The `--header NAME: VALUE` arguments, each checked as the receiver will check it. A bad
/// one is a usage error that names the header, never its value.
fn delivery_headers(args: &[String]) -> Result<Vec<DeliveryHeader>, Failure> {
    let usage = |e: ingest::InvalidHeader| Failure::Usage(format!("--header: {e}"));
    let mut headers: Vec<DeliveryHeader> = Vec::new();
    for arg in args {
        let (name, value) =
            arg.split_once(':').ok_or(ingest::InvalidHeader::Form).map_err(usage)?;
        let checked = ingest::RequiredHeader::new(name, value).map_err(usage)?;
        if headers.iter().any(|h| h.name.eq_ignore_ascii_case(checked.name())) {
            return Err(Failure::Usage(format!("--header: {} is given twice", checked.name())));
        }
        headers.push(DeliveryHeader {
            name: name.trim().to_owned(),
            value: Secret::new(value.trim()),
        });
    }
    Ok(headers)
}

/// Registry headers as the API's `delivery.headers`.
fn header_map(headers: &[DeliveryHeader]) -> BTreeMap<String, Secret> {
    headers.iter().map(|h| (h.name.clone(), h.value.clone())).collect()
}

/// The delivery of `drain` as a request: its reported settings with `endpoint`, and the
/// secret and headers the registry holds for it (else the ones Vercel reports).
fn delivery_of(drain: &Drain, endpoint: String, entry: Option<&DrainEntry>) -> DeliveryRequest {
    let reported = drain.delivery.as_ref();
    let encoding = reported.and_then(|d| d.encoding).unwrap_or(control::model::Encoding::Ndjson);
    let mut delivery = DeliveryRequest::http(endpoint, encoding);
    delivery.compression = reported.and_then(|d| d.compression).unwrap_or(Compression::None);
    delivery.headers = match entry {
        Some(entry) if !entry.headers.is_empty() => header_map(&entry.headers),
        _ => reported.map(|d| d.headers.clone()).unwrap_or_default(),
    };
    delivery.secret = secret_of(drain, entry);
    delivery
}

/// The secret a drain signs with: the registry's, else the one Vercel reports (none for an
/// integration's drain, which Vercel signs with the integration's secret).
fn secret_of(drain: &Drain, entry: Option<&DrainEntry>) -> Option<Secret> {
    entry.map(|e| e.secret.clone()).or_else(|| {
        match drain.delivery.as_ref().and_then(|d| d.secret.as_ref()) {
            Some(DrainSecret::Value(secret)) => Some(secret.clone()),
            _ => None,
        }
    })
}

async fn update_drain(
    client: &VercelClient,
    registry: &DrainRegistry,
    args: UpdateArgs,
) -> Result<DrainView, Failure> {
    let entry = registry.get(&args.id)?;
    let mut update = UpdateDrain {
        name: args.name,
        status: match (args.enable, args.disable) {
            (true, _) => Some(DrainStatus::Enabled),
            (_, true) => Some(DrainStatus::Disabled),
            _ => None,
        },
        ..UpdateDrain::default()
    };
    if let Some(url) = args.url {
        // `delivery` replaces the whole object: keep the secret and the other settings.
        let current = client.get_drain(&args.id).await?;
        let endpoint = match &entry {
            Some(entry) => drain_endpoint(&url, &entry.path_key),
            None => url,
        };
        update.delivery = Some(delivery_of(&current, endpoint, entry.as_ref()));
    }
    let drain = client.update_drain(&args.id, &update).await?;
    Ok(DrainView::new(&drain, entry.as_ref()))
}

async fn delete_drain(
    client: &VercelClient,
    registry: &DrainRegistry,
    id: &str,
    json_output: bool,
) -> Result<(), Failure> {
    if id.starts_with(LEGACY_PREFIX) {
        // Legacy log drains are never registered here: nothing to forget locally.
        client.delete_log_drain(id).await?;
        if json_output {
            println!("{}", json!({"id": id, "deleted": true, "legacy": true}));
        } else {
            println!("deleted legacy log drain {id}");
        }
        return Ok(());
    }
    let gone_already = match client.delete_drain(id).await {
        Ok(()) => false,
        // Gone on Vercel but still registered: forget it here too, so delete is idempotent.
        Err(e) if e.status() == Some(404) && registry.get(id)?.is_some() => true,
        Err(e) => return Err(e.into()),
    };
    let removed = registry.remove(id)?.is_some();
    if json_output {
        println!(
            "{}",
            json!({"id": id, "deleted": true, "alreadyGone": gone_already, "unregistered": removed})
        );
    } else if gone_already {
        println!("{id} was already gone on Vercel; removed it from the registry");
    } else if removed {
        println!("deleted {id} and removed it from the registry");
    } else {
        println!("deleted {id} (it was not in the registry)");
    }
    Ok(())
}

async fn test_drain(
    client: &VercelClient,
    registry: &DrainRegistry,
    id: &str,
    json_output: bool,
) -> Result<(), Failure> {
    let drain = client.get_drain(id).await?;
    let entry = registry.get(id)?;
    let endpoint = drain.delivery.as_ref().and_then(|d| d.endpoint.clone()).unwrap_or_default();
    let schemas = if drain.schemas.is_empty() { log_schemas() } else { drain.schemas.clone() };
    let test =
        TestDrain { schemas, delivery: delivery_of(&drain, endpoint.clone(), entry.as_ref()) };
    let result = client.test_drain(&test).await?;
    if !result.is_ok() {
        return Err(Failure::TestFailed {
            status: result.status,
            error: result.error,
            endpoint: result.endpoint.or(Some(endpoint)),
        });
    }
    if json_output {
        println!("{}", json!({"id": id, "ok": true, "endpoint": endpoint}));
    } else {
        println!("{endpoint} accepted the sample batch for {id}");
    }
    Ok(())
}

async fn env_command(
    client: VercelClient,
    command: EnvCommand,
    json_output: bool,
) -> Result<(), Failure> {
    let EnvCommand::Set { key, value, project, targets } = command;
    let targets: Vec<EnvTarget> = if targets.is_empty() {
        vec![EnvTarget::Production, EnvTarget::Preview, EnvTarget::Development]
    } else {
        targets
            .iter()
            .map(|t| match t {
                TargetArg::Production => EnvTarget::Production,
                TargetArg::Preview => EnvTarget::Preview,
                TargetArg::Development => EnvTarget::Development,
            })
            .collect()
    };
    let var = EnvVar {
        key: key.clone(),
        value: Secret::new(value),
        kind: EnvType::Encrypted,
        target: targets.clone(),
    };
    let answer = client.upsert_env(&project, &[var]).await?;
    if let Some(failed) = answer.failed.into_iter().next() {
        return Err(Failure::EnvRefused { code: failed.error.code, message: failed.error.message });
    }
    let names: Vec<String> = targets.iter().map(to_name).collect();
    if json_output {
        let id = answer.created.first().and_then(|c| c.id.clone());
        println!("{}", json!({"key": key, "project": project, "target": names, "id": id}));
    } else {
        println!("set {key} on {project} ({})", names.join(", "));
    }
    Ok(())
}

/// A serde enum's wire name (`"enabled"`, `"ndjson"`, …).
fn to_name(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "unknown".to_owned(),
    }
}

/// Shows the first characters of a secret and hides the rest: enough to tell two apart.
pub fn redact(secret: &Secret) -> String {
    let value = secret.expose();
    if value.chars().count() >= 16 {
        let prefix: String = value.chars().take(4).collect();
        format!("{prefix}****")
    } else {
        "****".to_owned()
    }
}

/// What the commands print about a drain: never a secret in clear.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DrainView {
    id: String,
    name: Option<String>,
    status: Option<String>,
    endpoint: Option<String>,
    encoding: Option<String>,
    compression: Option<String>,
    projects: Option<String>,
    project_ids: Vec<String>,
    team_id: Option<String>,
    created_at: Option<i64>,
    /// Redacted, or the marker kind (`INTEGRATION_SECRET`).
    secret: Option<String>,
    /// The names of the headers Vercel sends with each delivery (their values are not shown).
    headers: Vec<String>,
    registered: bool,
    path_key: Option<String>,
    disabled_reason: Option<String>,
}

impl DrainView {
    fn new(drain: &Drain, entry: Option<&DrainEntry>) -> DrainView {
        let delivery = drain.delivery.as_ref();
        let secret = match (entry, delivery.and_then(|d| d.secret.as_ref())) {
            (Some(entry), _) => Some(redact(&entry.secret)),
            (None, Some(DrainSecret::Value(secret))) => Some(redact(secret)),
            (None, Some(DrainSecret::Kind { kind })) => Some(kind.clone()),
            (None, None) => None,
        };
        DrainView {
            id: drain.id.clone(),
            name: drain.name.clone(),
            status: drain.status.map(|s| to_name(&s)),
            endpoint: delivery.and_then(|d| d.endpoint.clone()),
            encoding: delivery.and_then(|d| d.encoding).map(|e| to_name(&e)),
            compression: delivery.and_then(|d| d.compression).map(|c| to_name(&c)),
            projects: drain.projects.map(|p| to_name(&p)),
            project_ids: drain.project_ids.clone(),
            team_id: drain.team_id.clone(),
            created_at: drain.created_at,
            secret,
            headers: delivery.map(|d| d.headers.keys().cloned().collect()).unwrap_or_default(),
            registered: entry.is_some(),
            path_key: entry.map(|e| e.path_key.clone()),
            disabled_reason: drain.disabled_reason.clone(),
        }
    }
}

fn or_dash(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("-")
}

fn print_drain(view: &DrainView, json_output: bool) {
    if json_output {
        println!("{}", serde_json::to_string_pretty(view).expect("views serialize"));
        return;
    }
    let projects = if view.project_ids.is_empty() {
        or_dash(&view.projects).to_owned()
    } else {
        view.project_ids.join(", ")
    };
    let rows = [
        ("id", view.id.clone()),
        ("name", or_dash(&view.name).to_owned()),
        ("status", or_dash(&view.status).to_owned()),
        ("endpoint", or_dash(&view.endpoint).to_owned()),
        ("encoding", or_dash(&view.encoding).to_owned()),
        ("compression", or_dash(&view.compression).to_owned()),
        ("projects", projects),
        ("team", or_dash(&view.team_id).to_owned()),
        ("secret", or_dash(&view.secret).to_owned()),
        ("headers", if view.headers.is_empty() { "-".to_owned() } else { view.headers.join(", ") }),
        ("registered", if view.registered { "yes" } else { "no" }.to_owned()),
    ];
    for (key, value) in rows {
        println!("{key:<12} {value}");
    }
    if let Some(reason) = &view.disabled_reason {
        println!("{:<12} {reason}", "disabled by");
    }
}

fn print_list(views: &[DrainView], json_output: bool) {
    if json_output {
        println!("{}", serde_json::to_string_pretty(views).expect("views serialize"));
        return;
    }
    let header = ["ID", "NAME", "STATUS", "ENDPOINT", "SECRET", "REGISTERED"];
    let rows: Vec<[String; 6]> = views
        .iter()
        .map(|v| {
            [
                v.id.clone(),
                or_dash(&v.name).to_owned(),
                or_dash(&v.status).to_owned(),
                or_dash(&v.endpoint).to_owned(),
                or_dash(&v.secret).to_owned(),
                if v.registered { "yes" } else { "no" }.to_owned(),
            ]
        })
        .collect();
    print_table(header, &rows);
}

/// A legacy log drain as printed (header names only: values may be credentials).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LegacyView {
    id: String,
    name: Option<String>,
    url: Option<String>,
    delivery_format: Option<String>,
    project_ids: Vec<String>,
    sources: Vec<String>,
    environments: Vec<String>,
    headers: Vec<String>,
    configuration_id: Option<String>,
    created_at: Option<i64>,
}

impl LegacyView {
    fn new(drain: &control::model::LogDrain) -> LegacyView {
        LegacyView {
            id: drain.id.clone(),
            name: drain.name.clone(),
            url: drain.url.clone(),
            delivery_format: drain.delivery_format.map(|f| to_name(&f)),
            project_ids: drain.project_ids.clone(),
            sources: drain.sources.clone(),
            environments: drain.environments.clone(),
            headers: drain.headers.keys().cloned().collect(),
            configuration_id: drain.configuration_id.clone(),
            created_at: drain.created_at,
        }
    }
}

fn print_legacy_list(views: &[LegacyView], json_output: bool) {
    if json_output {
        println!("{}", serde_json::to_string_pretty(views).expect("views serialize"));
        return;
    }
    let header = ["ID", "NAME", "URL", "FORMAT", "PROJECTS"];
    let rows: Vec<[String; 5]> = views
        .iter()
        .map(|v| {
            let projects =
                if v.project_ids.is_empty() { "all".to_owned() } else { v.project_ids.join(",") };
            [
                v.id.clone(),
                or_dash(&v.name).to_owned(),
                or_dash(&v.url).to_owned(),
                or_dash(&v.delivery_format).to_owned(),
                projects,
            ]
        })
        .collect();
    print_table(header, &rows);
}

/// Prints `rows` under `header` in columns as wide as their widest cell.
fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let padded: Vec<String> =
            cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&header);
    for row in rows {
        line(&row.each_ref().map(String::as_str));
    }
    if rows.is_empty() {
        println!("(no drains)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_receiver_urls_get_the_path_key() {
        assert_eq!(drain_endpoint("https://x/vercel/logs", "k1"), "https://x/vercel/logs/k1");
        assert_eq!(drain_endpoint("https://x/vercel/logs/", "k1"), "https://x/vercel/logs/k1");
        assert_eq!(drain_endpoint("https://x/ingest", "k1"), "https://x/ingest");
    }

    #[test]
    fn redaction_keeps_only_a_short_prefix() {
        let secret = Secret::new("0123456789abcdef0123456789abcdef");
        assert_eq!(redact(&secret), "0123****");
        assert_eq!(redact(&Secret::new("short")), "****");
    }

    #[test]
    fn filter_carries_sources_and_environments() {
        assert_eq!(filter(&[], &[]), None);
        let f = filter(&[SourceArg::Lambda], &[EnvironmentArg::Production]).unwrap();
        assert_eq!(f["version"], "v2");
        assert_eq!(f["filter"]["log"]["sources"], json!(["lambda"]));
        assert_eq!(f["filter"]["deployment"]["environments"], json!(["production"]));
    }
}
