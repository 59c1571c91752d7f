//! `handmatch-bench`: measurements on this machine, in one run each. `embed`: an artefact's
//! embedding throughput by batch size; `search`: exact gallery search throughput on random
//! rows, in the interface other engines' benchmarks use; `agree`: the cosine between two
//! ways of embedding the same images (int8 against fp32, DCT-scaled against full decoding).

mod agree;
mod embed;
mod search;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "handmatch-bench",
    version,
    about = "Measure embedding and search speed"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Images per second of an artefact at several batch sizes.
    Embed(embed::EmbedArgs),
    /// Queries per second of the exact search over random L2-normalised rows.
    Search(search::SearchArgs),
    /// Cosine agreement, image by image, of two artefacts or two decodings.
    Agree(agree::AgreeArgs),
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Embed(args) => embed::run(args),
        Command::Search(args) => search::run(args),
        Command::Agree(args) => agree::run(args),
    }
}
