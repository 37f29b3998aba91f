//! `ironfenced`: the node daemon. Parses arguments, loads the config, runs.

use clap::Parser;
use ironfence::config::{Config, DEFAULT_PATH};
use ironfence::resources::attributes;
use std::path::PathBuf;
use std::process::ExitCode;

/// ironfence node daemon: fencer service, API socket, watchdog inquisitor
/// (SBD servants, corosync quorum, self-fencing).
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file.
    #[arg(long, short = 'c', default_value = DEFAULT_PATH, env = "IRONFENCE_CONFIG")]
    config: PathBuf,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `ironfence=debug`.
    #[arg(long, default_value = "info", env = "IRONFENCE_LOG")]
    log: String,
}

fn main() -> ExitCode {
    // Started as crm_attribute / crm_master (a symlink in the attribute
    // store, on the PATH of the agents this daemon runs).
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let called = std::path::Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(me) = attributes::SHIMS.iter().find(|s| **s == called) {
        let args: Vec<String> = std::env::args_os()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let env = std::env::vars_os()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect();
        let r = attributes::shim(me, &args, &env);
        print!("{}", r.stdout);
        eprint!("{}", r.stderr);
        return ExitCode::from(r.code);
    }
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                ironfence::exit::USAGE
            } else {
                0
            });
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let config = match Config::load_checked(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ironfenced: {e}");
            return ExitCode::from(ironfence::exit::ERROR);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ironfenced: cannot start the runtime: {e}");
            return ExitCode::from(ironfence::exit::ERROR);
        }
    };
    match rt.block_on(ironfence::node::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ ironfence::node::NodeError::SelfFenced { .. }) => {
            eprintln!("ironfenced: {e}");
            // Leave at once: no destructors, nothing that could disarm.
            std::process::exit(i32::from(ironfence::exit::SELF_FENCED));
        }
        Err(e) => {
            eprintln!("ironfenced: {e}");
            ExitCode::from(ironfence::exit::ERROR)
        }
    }
}
