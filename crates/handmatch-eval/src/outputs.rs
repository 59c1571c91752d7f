//! What `handmatch-eval run` leaves behind: results.json, cmc.png, scores.png (open set),
//! report.html, and the Markdown table it prints.

use std::fmt::Write as _;
use std::path::Path;

use handmatch_core::hand_image::HandImage;
use handmatch_core::report::plot::{cmc_chart, histogram_chart};

use crate::html_report;
use crate::run::RunResults;

pub fn write_all(out: &Path, results: &RunResults, images: &[&HandImage]) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(results)? + "\n",
    )?;
    let curves = vec![
        (
            "template → template".to_string(),
            results.template_to_template.cmc.clone(),
        ),
        (
            "image → template".to_string(),
            results.image_to_template.cmc.clone(),
        ),
    ];
    cmc_chart(&out.join("cmc.png"), "CMC through the service", &curves)?;
    if let Some(open) = &results.open_set {
        let scores = |s: &[f32]| s.iter().map(|&x| x as f64).collect();
        histogram_chart(
            &out.join("scores.png"),
            "Scores: mated vs non-mated searches",
            "cosine score",
            &[
                (
                    "mated (own subject)".to_string(),
                    scores(&open.mated_scores),
                ),
                (
                    "non-mated (best)".to_string(),
                    scores(&open.non_mated_scores),
                ),
            ],
            30,
        )?;
    }
    std::fs::write(
        out.join("report.html"),
        html_report::render(results, images)?,
    )?;
    Ok(())
}

/// One row per protocol: queries, gallery, R@1/5/10, mean rank, mAP.
pub fn markdown_table(results: &RunResults) -> String {
    let mut t = String::from(
        "| protocol | queries | gallery | R@1 | R@5 | R@10 | mean rank | mAP |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (name, m) in [
        ("template → template", &results.template_to_template),
        ("image → template", &results.image_to_template),
    ] {
        let r = |k| m.recall_at(k).map_or(f64::NAN, |x| x.value);
        writeln!(
            t,
            "| {name} | {} | {} | {:.3} | {:.3} | {:.3} | {:.2} | {:.3} |",
            m.queries,
            m.gallery_size,
            r(1),
            r(5),
            r(10),
            m.mean_rank,
            m.mean_ap
        )
        .expect("writing to a String");
    }
    t
}
