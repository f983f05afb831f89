//! The `wafleet` binary: parse the command line, load settings, start logging, run.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use wafleet::bench;
use wafleet::cli::{BackupArgs, Cli, Command, ConfigCommand};
use wafleet::config::{ConfigError, Settings};
use wafleet::db::{backup, migrate};
use wafleet::startup::Application;
use wafleet::telemetry;
use wafleet::web::health;
use wafleet::whatsapp::remote;

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    let outcome = match &cli.command {
        // Builds its own settings and logs to stderr: its stdout is one JSON object.
        Some(Command::Bench(args)) => bench::run(args, cli.time_scale),
        _ => {
            let settings = match Settings::load(&cli) {
                Ok(settings) => settings,
                Err(err) => {
                    eprintln!("wafleet: configuration error: {err}");
                    return ExitCode::from(2);
                }
            };
            match cli.command {
                // One-shot commands: no logging, their output is the answer.
                Some(Command::Healthcheck) => {
                    health::probe(&settings.server).context("healthcheck failed")
                }
                Some(Command::Config(args)) => match args.command {
                    ConfigCommand::Check(check) => settings
                        .render(check.format)
                        .map(|text| print!("{text}"))
                        .context("cannot print the settings"),
                },
                Some(Command::Backup(args)) => run_backup(&settings, &args),
                command => {
                    telemetry::init(&settings.log);
                    match command {
                        Some(Command::Migrate) => run_migrate(&settings),
                        Some(Command::Sim(args)) => remote::server::run(settings.sim, args.listen),
                        _ => run_serve(settings),
                    }
                }
            }
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // A setting that cannot work, found only when used (TLS certificates): as at load.
        Err(err) if err.downcast_ref::<ConfigError>().is_some() => {
            eprintln!("wafleet: configuration error: {err}");
            ExitCode::from(2)
        }
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "wafleet stopped with an error");
            eprintln!("wafleet: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `wafleet migrate`: apply pending migrations and report them.
fn run_migrate(settings: &Settings) -> anyhow::Result<()> {
    let report = migrate::run_pending(&settings.database)?;
    if report.applied.is_empty() {
        println!("database schema is current");
    }
    for version in report.applied {
        println!("applied {version}");
    }
    Ok(())
}

/// `wafleet backup FILE`: copy the SQLite database and say where to.
fn run_backup(settings: &Settings, args: &BackupArgs) -> anyhow::Result<()> {
    let bytes = backup::vacuum_into(&settings.database, &args.file).context("backup failed")?;
    println!(
        "backed up {} to {} ({bytes} bytes)",
        settings.database.redacted_url(),
        args.file.display()
    );
    Ok(())
}

/// `wafleet serve`: run the daemon until a signal stops it.
fn run_serve(settings: Settings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        Application::build(settings)
            .await?
            .run_until_stopped()
            .await
    })
}

/// glibc's malloc gives each busy thread an arena of its own (up to 8 per core), and each keeps
/// what it freed; with the blocking threads of picture decoding and password hashing that adds
/// up. Two arenas measured better on every figure (`bench images`: peak growth of six parallel
/// 21-megapixel uploads 206–247 → 118–120 MiB; `bench boot`, 1,000 devices: 40.5 → 23.8 KiB
/// per device, same boot time). glibc reads the setting only at start, and setting it in-process
/// needs `unsafe` (`mallopt`), so when `MALLOC_ARENA_MAX` is unset the daemon replaces itself
/// (same process id, same arguments) with one that has it set to 2. Set it to choose another.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        use std::os::unix::process::CommandExt;
        if let Ok(exe) = std::env::current_exe() {
            let err = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .env("MALLOC_ARENA_MAX", "2")
                .exec();
            // Only reached when the exec failed (e.g. the binary was replaced on disk).
            eprintln!("wafleet: running with glibc's default malloc arenas: {err}");
        }
    }
}
