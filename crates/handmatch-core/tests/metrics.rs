//! The report charts as real PNG files.

use std::collections::HashSet;

use handmatch_core::report::{cmc_chart, histogram_chart, line_chart, Series};

fn assert_drawn_png(path: &std::path::Path) {
    let image = image::open(path).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (900, 600));
    let first = image.get_pixel(0, 0);
    let distinct: HashSet<_> = image.pixels().map(|p| p.0).collect();
    assert!(
        image.pixels().any(|p| p != first) && distinct.len() > 10,
        "{} looks blank ({} colours)",
        path.display(),
        distinct.len()
    );
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}

#[test]
fn charts_are_written_as_decodable_pngs() {
    let dir = tempfile::tempdir().unwrap();

    let line = dir.path().join("line.png");
    line_chart(
        &line,
        "Training loss",
        "epoch",
        "loss",
        &[
            Series {
                name: "train".into(),
                points: (0..20)
                    .map(|i| (i as f64, 3.0 / (1.0 + i as f64)))
                    .collect(),
            },
            Series {
                name: "validation".into(),
                points: (0..20)
                    .map(|i| (i as f64, 3.2 / (1.0 + i as f64) + 0.2))
                    .collect(),
            },
        ],
    )
    .unwrap();
    assert_drawn_png(&line);

    let cmc = dir.path().join("cmc.png");
    let curve = |p: f64| {
        (1..=50)
            .map(|k| 1.0 - (1.0 - p).powi(k))
            .collect::<Vec<_>>()
    };
    cmc_chart(
        &cmc,
        "CMC: dorsal queries vs palmar templates",
        &[
            ("template→template".into(), curve(0.3)),
            ("image→template".into(), curve(0.2)),
        ],
    )
    .unwrap();
    assert_drawn_png(&cmc);

    let histogram = dir.path().join("scores.png");
    let mated: Vec<f64> = (0..200)
        .map(|i| 0.4 + 0.5 * ((i * 37 % 200) as f64 / 200.0))
        .collect();
    let non_mated: Vec<f64> = (0..2000)
        .map(|i| -0.2 + 0.6 * ((i * 53 % 2000) as f64 / 2000.0))
        .collect();
    histogram_chart(
        &histogram,
        "Cosine scores",
        "cosine similarity",
        &[("mated".into(), mated), ("non-mated".into(), non_mated)],
        40,
    )
    .unwrap();
    assert_drawn_png(&histogram);

    if let Ok(keep) = std::env::var("HANDMATCH_KEEP_CHARTS") {
        for name in ["line.png", "cmc.png", "scores.png"] {
            std::fs::copy(
                dir.path().join(name),
                std::path::Path::new(&keep).join(name),
            )
            .unwrap();
        }
    }
}

#[test]
fn chart_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.png");
    let empty = line_chart(&path, "Empty", "x", "y", &[]).unwrap_err();
    assert!(empty.to_string().contains("no data"), "{empty}");
    let nan = line_chart(
        &path,
        "Bad",
        "x",
        "y",
        &[Series {
            name: "broken".into(),
            points: vec![(0.0, f64::NAN)],
        }],
    )
    .unwrap_err();
    assert!(nan.to_string().contains("broken"), "{nan}");
    let bins = histogram_chart(&path, "H", "x", &[("a".into(), vec![1.0])], 0).unwrap_err();
    assert!(bins.to_string().contains("bin"), "{bins}");
    assert!(!path.exists());
}
