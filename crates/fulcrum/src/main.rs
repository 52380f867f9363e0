//! `fulcrum`: the command-line entry point.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod check;

/// Fulcrum: a high-availability Layer-4 load balancer in the tradition of
/// LVS, Piranha and keepalived.
#[derive(Debug, Parser)]
#[command(name = "fulcrum", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate an lvs.cf: print every problem with file:line:col, exit 1 on
    /// any error.
    Check {
        /// The configuration file.
        #[arg(long, short = 'c', value_name = "PATH", default_value = "/etc/lvs.cf")]
        config: PathBuf,
        /// Also print the IPVS table the file describes, as `ipvsadm -S -n`
        /// would.
        #[arg(long)]
        save: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config, save } => check::run(&config, save),
    }
}
