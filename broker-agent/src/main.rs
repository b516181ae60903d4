use clap::Parser;
use millrace_agent::config::AgentConfig;

fn main() -> std::process::ExitCode {
    let config = AgentConfig::parse();
    // Whatever TLS features the build unified into reqwest, give rustls a crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    millrace_agent::init_tracing(&config.log_format);
    // A current-thread runtime: the broker is forked from this thread, and its
    // PR_SET_PDEATHSIG fires when the forking thread ends (see process::spawn_broker).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("millrace-agent: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(millrace_agent::run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("millrace-agent failed: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
