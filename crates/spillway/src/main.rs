//! `spillway`: the command line. Parses arguments, loads the configuration, runs the app, and
//! exits with 0 (clean stop), 1 (runtime failure) or 2 (usage or configuration error). The
//! drain-management commands (`drains …`, `env set`) live in `spillway::commands`, with their own
//! exit codes (3 API, 4 auth, 5 local, 6 store unavailable).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use spillway::commands::{DrainsArgs, EnvArgs, StoreArgs};
use spillway::reload::LogHandle;
use spillway::{config, error_chain};
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser)]
#[command(name = "spillway", version, about = "A high-throughput receiver for Vercel log drains")]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Receive drain deliveries until SIGTERM or Ctrl-C.
    Serve {
        /// A TOML configuration file; without one the embedded defaults apply.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate the configuration (file and environment) and print the effective settings.
    CheckConfig {
        /// A TOML configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Manage Vercel drains (token in SPILLWAY_VERCEL_TOKEN) and the local drain registry.
    Drains(DrainsArgs),
    /// Manage Vercel project environment variables (token in SPILLWAY_VERCEL_TOKEN).
    Env(EnvArgs),
    /// Manage the shared PostgreSQL store (SPILLWAY_DATABASE_URL): import a file store, rotate
    /// the key that seals its secrets.
    Store(StoreArgs),
}

/// jemalloc serves every allocation of the process, librdkafka's included.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = init_logging(cli.log_format);
    let env = |key: &str| std::env::var(key).ok();
    let (path, check_only) = match cli.command {
        Command::Drains(args) => return spillway::commands::run_drains(args, &env),
        Command::Env(args) => return spillway::commands::run_env(args, &env),
        Command::Store(args) => return spillway::commands::run_store(args, &env),
        Command::Serve { config } => (config, false),
        Command::CheckConfig { config } => (config, true),
    };
    let (config, table) = match config::load_with_table(path.as_deref(), env) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("spillway: {}", error_chain(&e));
            return ExitCode::from(2);
        }
    };
    if check_only {
        println!("{config:#?}");
        return ExitCode::SUCCESS;
    }
    let log_filter = spillway::reload::log_filter(log);
    if let Ok(apply) = log_filter(&config) {
        apply();
    }
    match serve(config, (path, table), log_filter) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("spillway: {}", error_chain(e.as_ref()));
            ExitCode::from(1)
        }
    }
}

/// Serves `config`, read from the file at `path` (`None`: no file) whose keys and values were
/// `table`, until a stop signal.
fn serve(
    config: config::Config,
    (path, table): (Option<PathBuf>, Option<toml::Table>),
    log_filter: spillway::reload::Extra,
) -> anyhow::Result<bool> {
    // Large deliveries are opened on the blocking pool; that work is CPU-bound, so more threads
    // than cores would only add memory (an allocator arena each) and contention.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(cores.max(2))
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Listen for SIGTERM before anything is bound: a stop sent as soon as the port answers
        // must be a clean stop, not the signal's default (death).
        let shutdown = shutdown_signal()?;
        // Likewise SIGHUP, whose default would end the process.
        let hangups = signal(SignalKind::hangup())?;
        let app = spillway::App::start(config).await?;
        app.reload_on(hangups, (path, table), Some(log_filter));
        Ok(app.run(shutdown).await)
    })
}

/// Resolves at the first SIGTERM or Ctrl-C; the handlers are installed when this is called. A
/// second one ends the process at once (exit 1): every `200` already sent was for data made
/// durable before it, and the deliveries still in flight were answered nothing, so their
/// senders retry; files left open are completed at the next start.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = interrupt.recv() => tracing::info!("interrupt: stopping"),
        }
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
            tracing::warn!("second stop signal: exiting now");
            std::process::exit(1);
        });
    })
}

/// Logs to stderr filtered by `RUST_LOG` (else `info` until the configuration's `log_level` is
/// known); returns the handle that changes the filter (`spillway::reload::log_filter`).
fn init_logging(format: LogFormat) -> LogHandle {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{fmt, reload, EnvFilter};
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(config::DEFAULT_LOG_LEVEL));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry.with(fmt::layer().with_writer(std::io::stderr)).init(),
        LogFormat::Json => registry.with(fmt::layer().json().with_writer(std::io::stderr)).init(),
    }
    handle
}
