//! The command line: `wafleet [serve]`, `wafleet migrate`, global `--config` and `--log-format`.
//!
//! Parsing only; [`crate::config::Settings::load`] folds the flags into the settings so that a
//! flag always wins over files and environment.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Keeps a fleet of WhatsApp accounts online, broadcasts campaigns and mirrors chats.
#[derive(Debug, Parser)]
#[command(name = "wafleet", version, about)]
pub struct Cli {
    /// Extra configuration file, read after config/default.toml and config/<WAFLEET_ENV>.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format: readable lines (auto, pretty) or one JSON object per line (json).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,

    /// Demo mode: make sure N simulated devices exist for the admin's tenant and pair them
    /// automatically (simulator connector only).
    #[arg(long, global = true, value_name = "N")]
    pub simulate: Option<u32>,

    /// Run the simulator's pacing, schedules and backoff K times faster (demos, tests, benchmarks).
    #[arg(long, global = true, value_name = "K")]
    pub time_scale: Option<f64>,

    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
}

/// Flags of `wafleet serve`.
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// Port to listen on (overrides PORT and the configuration).
    #[arg(long)]
    pub port: Option<u16>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines, coloured when stdout is a terminal.
    Auto,
    /// Always human-readable.
    Pretty,
    /// Always one JSON object per line.
    Json,
}

impl Cli {
    /// The serve flags, also when no sub-command was given.
    pub fn serve_args(&self) -> Option<&ServeArgs> {
        match &self.command {
            None => None,
            Some(Command::Serve(args)) => Some(args),
            Some(Command::Migrate) => None,
        }
    }
}
