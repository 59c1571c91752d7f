//! `handmatch-eval`: drives a running handmatch server over gRPC — bulk enrolment, queries,
//! evaluation through the service and a bounded load generator. Each subcommand lives in
//! `commands/`.

mod commands;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "handmatch-eval",
    version,
    about = "Drive a handmatch server: enrol, identify, load"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enrol a dataset's images (palmar by default) through EnrollStream.
    Enroll(commands::enroll::EnrollArgs),
    /// Identify one person from one or more images and print the ranked answer.
    Identify(commands::identify::IdentifyArgs),
    /// Send a bounded mix of requests and report throughput and latency.
    Load(commands::load::LoadArgs),
    /// Print the server's GetInfo, waiting for it to be ready if asked.
    Info(commands::info::InfoArgs),
    /// Enrol the palmar images of a dataset (or split subset), identify every dorsal image and
    /// every subject's dorsal set, and report Recall@K, mean rank, mAP and CMC.
    Run(commands::run::RunArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Enroll(a) => commands::enroll::run(a).await,
        Command::Identify(a) => commands::identify::run(a).await,
        Command::Load(a) => commands::load::run(a).await,
        Command::Info(a) => commands::info::run(a).await,
        Command::Run(a) => commands::run::run(a).await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_subcommand_is_a_valid_clap_command() {
        use clap::CommandFactory;
        super::Args::command().debug_assert();
    }
}
