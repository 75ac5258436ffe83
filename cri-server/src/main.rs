//! cortend: the corten CRI daemon.
#![forbid(unsafe_code)]

mod cdi;
mod cli;
mod config;
mod convert;
mod error;
mod handlers;
mod image_service;
mod paging;
mod rpc_log;
mod runtime_service;
mod server;
mod service;
mod streaming;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let config = match cli.config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("cortend: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(cli::Command::Config) = cli.command {
        print!("{}", config.template());
        return ExitCode::SUCCESS;
    }
    init_tracing(&config.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cortend: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("cortend: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(level: &str) {
    let level = config::parse_level(level).unwrap_or(tracing::Level::INFO);
    // Our crates log at the chosen level; the libraries below us only warn,
    // unless RUST_LOG asks for more.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "warn,cortend={level},corten_cri={level},corten_runtime={level}"
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
