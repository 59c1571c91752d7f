//! `handmatch-server`: the gRPC service. Every flag is also an environment variable.

use clap::Parser;
use handmatch_server::config::{Args, Command, LogFormat};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,ort=warn".into());
    // Logs go to stderr: stdout carries only what a command prints (the key of `keys create`).
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match args.command {
        Some(Command::Keys(keys)) => {
            return handmatch_server::keys_cli::run(keys, &mut std::io::stdout().lock()).await
        }
        Some(Command::Templates(templates)) => {
            handmatch_server::protection::run_templates_command(templates).await?;
            return Ok(());
        }
        Some(Command::Audit(audit)) => {
            let mut out = std::io::stdout().lock();
            return handmatch_server::protection::run_audit_command(audit, &mut out).await;
        }
        None => {}
    }
    let server = handmatch_server::server::start(args).await?;
    server.run_until(shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
