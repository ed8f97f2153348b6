//! `spillway`: the command line. Parses arguments, loads the configuration, runs the app, and
//! exits with 0 (clean stop), 1 (runtime failure) or 2 (usage or configuration error).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use spillway::config;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let (Command::Serve { config: path } | Command::CheckConfig { config: path }) = &cli.command;
    let config = match config::load(path.as_deref(), |k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("spillway: {}", error_chain(&e));
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::CheckConfig { .. } => {
            println!("{config:#?}");
            ExitCode::SUCCESS
        }
        Command::Serve { .. } => match serve(config) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("spillway: {}", error_chain(e.as_ref()));
                ExitCode::from(1)
            }
        },
    }
}

fn serve(config: config::Config) -> anyhow::Result<bool> {
    // Large deliveries are opened on the blocking pool; that work is CPU-bound, so more threads
    // than cores would only add memory (an allocator arena each) and contention.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(cores.max(2))
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let app = spillway::App::start(config).await?;
        Ok(app.run(shutdown_signal()).await)
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: stopping"),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
