//! The `gitmoxi` binary: parse the command line, set up logging, run.

use clap::Parser;

fn main() {
    // before any thread starts: `serve` may restart itself with one malloc arena
    gitmoxi::memory::limit_malloc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
    match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(2);
        }
    }
}

async fn run() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GITMOXI_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
    let cli = gitmoxi::cli::Cli::parse();
    match gitmoxi::cli::run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
