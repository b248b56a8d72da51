//! mailwarden: the binary. Thin glue — parse flags, set up diagnostics, call
//! the command, map the outcome to an exit code (0 ok, 1 nothing found,
//! 2 errors). A closed pipe (`| head`) ends the program quietly.

mod alerting;
mod cli;
mod commands;
mod config;
mod engine;
mod forward_source;
mod output;
mod status;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, LogsCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            if output::is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("mailwarden: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Logs(LogsCommand::Summary(args)) => commands::logs::summary(args),
        Command::Logs(LogsCommand::Search(args)) => commands::logs::search(args),
        Command::Logs(LogsCommand::Parse(args)) => commands::logs::parse(args),
        Command::Serve(args) => commands::serve::serve(args),
        Command::Ingest(args) => commands::ingest::ingest(args),
        Command::Status(args) => commands::status::status(args),
        Command::Investigate(args) => commands::investigate::investigate(args),
        Command::Dns(args) => commands::dns::dns(args),
        Command::Dmarc(args) => commands::dmarc::dmarc(args),
        Command::Detect(args) => commands::detect::detect(args),
        Command::Rules(cmd) => commands::rules::rules(cmd),
        Command::Alerts(args) => commands::alerts::alerts(args),
        Command::Doctor(args) => commands::doctor::doctor(args),
        Command::Webscan(args) => commands::webscan::webscan(args),
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
