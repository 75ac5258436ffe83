//! Command-line flags; they override the config file, which overrides the defaults.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, DEFAULT_CONFIG_PATH};

/// cortend serves the Kubernetes CRI (v1) on a Unix socket.
#[derive(Debug, Parser)]
#[command(name = "cortend", version, about)]
pub struct Cli {
    /// Config file. When not given, /etc/corten/config.toml is read if it exists.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Persistent state directory (root_dir).
    #[arg(long, value_name = "DIR", global = true)]
    pub root: Option<PathBuf>,
    /// Runtime state directory (state_dir).
    #[arg(long, value_name = "DIR", global = true)]
    pub state: Option<PathBuf>,
    /// CRI socket path (listen).
    #[arg(long, value_name = "SOCKET", global = true)]
    pub listen: Option<PathBuf>,
    /// Log level: error, warn, info, debug, trace (log_level).
    #[arg(long, value_name = "LEVEL", global = true)]
    pub log_level: Option<String>,
    /// What to do; without a command, run the daemon.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// cortend's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the complete configuration as commented TOML, every key
    /// explained: the defaults, overridden by the config file and flags.
    Config,
}

impl Cli {
    /// The effective configuration: defaults, then the file, then the flags.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::load(path, true)?,
            None => Config::load(std::path::Path::new(DEFAULT_CONFIG_PATH), false)?,
        };
        if let Some(v) = &self.root {
            config.root_dir = v.clone();
        }
        if let Some(v) = &self.state {
            config.state_dir = v.clone();
        }
        if let Some(v) = &self.listen {
            config.listen = v.clone();
        }
        if let Some(v) = &self.log_level {
            config.log_level = v.clone();
        }
        config.validate("command line")?;
        Ok(config)
    }
}
