//! `ossup`: resumable multipart upload to Alibaba Cloud OSS from the shell.
//!
//! `docs/cli.md` documents every command and flag. The modules: [`cli`] is the command tree;
//! [`upload`] (with [`tree_upload`] and [`tree`] for a directory), [`uploads`] and [`demo`] run the
//! commands; [`progress`] shows events; [`explain`]
//! turns engine errors into advice; [`failure`] holds exit codes; [`terminal`] escapes text from
//! servers before it is printed; the rest parse what people type.

mod cli;
mod config;
mod demo;
mod duration;
mod explain;
mod failure;
mod interrupt;
mod meta;
mod object_args;
mod oss_url;
mod progress;
mod size;
mod terminal;
mod tree;
mod tree_upload;
mod upload;
mod uploads;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::{Cli, Command, UploadsCommand};
use crate::failure::{EXIT_CANCELLED, EXIT_OK, Failure};
use crate::interrupt::interrupted;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(dispatch(cli));
    // Part reads run on blocking threads; none is left after a finished command, and none may hold
    // the process up after an interrupted one.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(failure) => {
            if failure.exit_code == EXIT_CANCELLED {
                eprintln!("{failure}");
            } else {
                eprintln!("error: {failure}");
            }
            failure.process_exit_code()
        }
    }
}

async fn dispatch(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        // Upload handles interrupts itself: it stops the parts in flight and keeps the checkpoint.
        Command::Upload(args) => upload::run(*args).await,
        Command::Uploads(UploadsCommand::Ls(args)) => until_interrupted(uploads::ls(args)).await,
        Command::Uploads(UploadsCommand::Abort(args)) => {
            until_interrupted(uploads::abort(args)).await
        }
        Command::Demo(args) => until_interrupted(demo::run(args)).await,
    }
}

/// Runs `work` until it ends or Ctrl-C / SIGTERM arrives; dropping it cleans up what it made.
async fn until_interrupted(work: impl Future<Output = Result<(), Failure>>) -> Result<(), Failure> {
    tokio::select! {
        result = work => result,
        signal = interrupted() => Err(Failure::cancelled(format!("interrupted by {}", signal.name()))),
    }
}

/// Logs to stderr as `RUST_LOG` says (e.g. `RUST_LOG=ossup=debug`); silent when it is not set.
fn init_tracing() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}
