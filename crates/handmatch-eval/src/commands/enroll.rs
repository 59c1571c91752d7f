//! `handmatch-eval enroll`: enrol a dataset's images (palmar by default) through EnrollStream.

use clap::Args;
use handmatch_core::hand_image::{Aspect, HandImage};
use handmatch_eval::client;

use super::{DataArgs, ServerArgs};

#[derive(Args)]
pub struct EnrollArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, env = "HANDMATCH_ENROLL_ASPECT", value_enum, default_value_t = Aspect::Palmar)]
    pub aspect: Aspect,
}

pub async fn run(a: EnrollArgs) -> anyhow::Result<()> {
    let ds = a.data.load()?;
    let images: Vec<&HandImage> = ds.images.iter().filter(|i| i.aspect == a.aspect).collect();
    let mut c = a.server.connect().await?;
    let (stored, failed) = client::enroll_all(
        &mut c,
        &a.server.gallery,
        &a.server.consent_reference,
        &images,
    )
    .await?;
    println!("enrolled {stored} templates of {} images", images.len());
    for f in &failed {
        eprintln!("failed: {f}");
    }
    anyhow::ensure!(failed.is_empty(), "{} subjects failed", failed.len());
    Ok(())
}
