use clap::Parser;
use millrace_broker::config::BrokerConfig;

fn main() -> std::process::ExitCode {
    let config = BrokerConfig::parse();
    millrace_broker::run::init_tracing(&config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("millrace-broker: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(millrace_broker::run::run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("millrace-broker failed: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
