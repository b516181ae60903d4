//! `millrace`: the control plane (`millrace serve`) and a small CLI over its REST API.

use clap::Parser;
use tracing_subscriber::EnvFilter;

use millrace_control_plane::config::{Cli, Command, ServeConfig};
use millrace_control_plane::{cli, http, server};

fn main() -> std::process::ExitCode {
    let args = Cli::parse();
    let default_level = match args.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("MILLRACE_LOG")
                .unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        // Escape codes only for a person at a terminal: a log file stays greppable.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("millrace: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match args.command {
            Command::Serve(serve) => server::serve(ServeConfig::from_args(serve)).await,
            Command::Openapi => {
                println!("{}", openapi_json()?);
                Ok(())
            }
            Command::Crd => {
                print!("{}", millrace_control_plane::operator::crd_yaml()?);
                Ok(())
            }
            Command::Cluster { client, action } => cli::cluster(&client, action).await,
            Command::Bootstrap { client, cluster_id } => cli::bootstrap(&client, &cluster_id).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("millrace: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn openapi_json() -> anyhow::Result<String> {
    Ok(http::openapi().to_pretty_json()?)
}
