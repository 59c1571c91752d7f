//! The 11k Hands loader and the subject split, on small fixtures written here: the original
//! header, quoting, CRLF line endings and the real file's trailing-space id.

use std::path::Path;

use handmatch_core::dataset::hand_info::{
    Dataset, DatasetError, Filter, LoadOptions, OnProblem, ProblemKind,
};
use handmatch_core::dataset::split::{Fractions, SubjectSplit, Subset};
use handmatch_core::hand_image::{Aspect, Side};

const HEADER: &str =
    "id,age,gender,skinColor,accessories,nailPolish,aspectOfHand,imageName,irregularities";

/// Writes `HandInfo.csv` (CRLF) and a tiny JPEG for every named image except `missing`.
fn fixture(dir: &Path, rows: &[&str], missing: &[&str]) {
    std::fs::create_dir_all(dir.join("Hands")).unwrap();
    let mut csv = format!("{HEADER}\r\n");
    for r in rows {
        csv.push_str(r);
        csv.push_str("\r\n");
        let name = r.rsplit(',').nth(1).unwrap_or("").trim_matches('"');
        if !missing.contains(&name) && name.ends_with(".jpg") {
            image::RgbImage::from_pixel(8, 6, image::Rgb([200, 150, 120]))
                .save(dir.join("Hands").join(name))
                .unwrap();
        }
    }
    std::fs::write(dir.join("HandInfo.csv"), csv).unwrap();
}

fn good_rows() -> Vec<&'static str> {
    vec![
        r#""0000000",27,"male","fair",0,0,"dorsal right","Hand_0000001.jpg",0"#,
        r#""0000000",27,"male","fair",1,0,"palmar left","Hand_0000002.jpg",0"#,
        // The real file has an id with a trailing space: it is the same subject as "0000001".
        r#""0000001 ",30,"female","dark",0,1,"dorsal left","Hand_0000003.jpg",1"#,
        r#""0000001",30,"female","dark",0,1,"palmar right","Hand_0000004.jpg",0"#,
        // A quoted field with a comma inside must not shift the columns.
        r#""0000002",41,"female","medium, olive",0,0,"dorsal right","Hand_0000005.jpg",0"#,
    ]
}

#[test]
fn reads_quoted_crlf_rows_and_trims_ids() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path(), &good_rows(), &[]);
    let (ds, report) = Dataset::load(tmp.path(), &LoadOptions::default()).unwrap();
    assert_eq!((report.rows, report.loaded), (5, 5));
    assert!(report.problems.is_empty());
    let subjects = ds.subjects();
    assert_eq!(
        subjects.keys().copied().collect::<Vec<_>>(),
        vec!["0000000", "0000001", "0000002"]
    );
    assert_eq!(
        (subjects["0000001"].dorsal, subjects["0000001"].palmar),
        (1, 1)
    );
    let third = &ds.images[2];
    assert_eq!((third.aspect, third.side), (Aspect::Dorsal, Side::Left));
    assert!(third.nail_polish && third.irregular && !third.accessories);
    assert_eq!(third.line, 4, "line numbers count the header as line 1");
    assert_eq!(ds.images[4].skin_color, "medium, olive");
    assert!(ds.images[0].path.ends_with("Hands/Hand_0000001.jpg"));
}

#[test]
fn filters_by_aspect_side_accessories_and_irregularity() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path(), &good_rows(), &[]);
    let (ds, _) = Dataset::load(tmp.path(), &LoadOptions::default()).unwrap();
    let count = |f: Filter| ds.filtered(&f).images.len();
    assert_eq!(
        count(Filter {
            aspect: Some(Aspect::Dorsal),
            ..Default::default()
        }),
        3
    );
    assert_eq!(
        count(Filter {
            side: Some(Side::Right),
            ..Default::default()
        }),
        3
    );
    assert_eq!(
        count(Filter {
            exclude_accessories: true,
            ..Default::default()
        }),
        4
    );
    assert_eq!(
        count(Filter {
            exclude_irregular: true,
            ..Default::default()
        }),
        4
    );
}

#[test]
fn problems_are_errors_by_default_and_counted_when_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rows = good_rows();
    rows.push(r#""0000003",22,"male","fair",0,0,"dorsal right","Hand_0000006.jpg",0"#); // file missing
    rows.push(r#""0000003",22,"male","fair",0,0,"lateral right","Hand_0000007.jpg",0"#); // unknown aspect
    rows.push(r#""0000003",twenty,"male","fair",0,0,"palmar right","Hand_0000008.jpg",0"#); // bad age
    rows.push(r#""0000003",22,"male""#); // too few fields
    fixture(tmp.path(), &rows, &["Hand_0000006.jpg"]);

    let err = Dataset::load(tmp.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HandInfo.csv: line 7: image")
            && err.contains("Hand_0000006.jpg does not exist"),
        "{err}"
    );

    let (ds, report) = Dataset::load(
        tmp.path(),
        &LoadOptions {
            on_problem: OnProblem::Skip,
        },
    )
    .unwrap();
    assert_eq!((report.rows, report.loaded, ds.images.len()), (9, 5, 5));
    assert_eq!(report.count(ProblemKind::MissingFile), 1);
    assert_eq!(report.count(ProblemKind::UnknownAspect), 1);
    assert_eq!(report.count(ProblemKind::Malformed), 2);
    let lines: Vec<usize> = report.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![7, 8, 9, 10]);
    assert!(report.problems[1].message.contains("lateral right"));
    assert!(report.problems[2].message.contains("`age`"));
}

#[test]
fn bad_folders_and_files_name_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Dataset::load(&tmp.path().join("nope"), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, DatasetError::NoFolder { .. }), "{err}");
    assert!(err.to_string().contains("nope: no such folder"));

    let err = Dataset::load(tmp.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("HandInfo.csv"), "{err}");

    std::fs::write(tmp.path().join("HandInfo.csv"), "").unwrap();
    let err = Dataset::load(tmp.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("HandInfo.csv: the file is empty"), "{err}");

    std::fs::write(tmp.path().join("HandInfo.csv"), "id,age,sex\r\n1,2,3\r\n").unwrap();
    let err = Dataset::load(tmp.path(), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 1: header is") && err.contains("\"sex\""),
        "{err}"
    );
}

/// Subject "0000xyz" has `n` dorsal and `m` palmar images (names only: files written too).
fn many_subjects(dir: &Path, n_subjects: usize) {
    let mut rows = Vec::new();
    let mut k = 0;
    for s in 0..n_subjects {
        for aspect in ["dorsal right", "palmar right"] {
            // Every 10th subject has no palmar images.
            if s % 10 == 9 && aspect.starts_with("palmar") {
                continue;
            }
            k += 1;
            rows.push(format!(
                r#""{s:07}",30,"male","fair",0,0,"{aspect}","Hand_{k:07}.jpg",0"#
            ));
        }
    }
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    fixture(dir, &rows, &[]);
}

#[test]
fn split_is_deterministic_disjoint_and_drops_single_view_subjects() {
    let tmp = tempfile::tempdir().unwrap();
    many_subjects(tmp.path(), 50);
    let (ds, _) = Dataset::load(tmp.path(), &LoadOptions::default()).unwrap();
    let split = SubjectSplit::new(&ds, Fractions::default(), 42).unwrap();
    assert_eq!(split.dropped.len(), 5);
    assert!(split.dropped.iter().all(|d| d.reason == "no palmar images"));
    assert_eq!(
        (split.train.len(), split.val.len(), split.test.len()),
        (31, 5, 9)
    );
    split.check_disjoint().unwrap();
    split.check_against(&ds, Subset::Test).unwrap();

    // Same data and seed: the same split, in this process and (pinned) on any machine.
    assert_eq!(
        split,
        SubjectSplit::new(&ds, Fractions::default(), 42).unwrap()
    );
    assert_eq!(
        split.test,
        vec![
            "0000003", "0000012", "0000028", "0000030", "0000031", "0000032", "0000037", "0000038",
            "0000042"
        ]
    );
    assert_ne!(
        split.test,
        SubjectSplit::new(&ds, Fractions::default(), 43)
            .unwrap()
            .test
    );

    let path = tmp.path().join("split.json");
    split.save(&path).unwrap();
    assert_eq!(SubjectSplit::load(&path).unwrap(), split);
}

#[test]
fn split_files_that_do_not_fit_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    many_subjects(tmp.path(), 20);
    let (ds, _) = Dataset::load(tmp.path(), &LoadOptions::default()).unwrap();
    let bad = Fractions {
        train: 0.7,
        val: 0.2,
        test: 0.2,
    };
    assert!(SubjectSplit::new(&ds, bad, 0)
        .unwrap_err()
        .to_string()
        .contains("add up to 1"));

    let mut split = SubjectSplit::new(&ds, Fractions::default(), 0).unwrap();
    split.test.push(split.train[0].clone());
    let path = tmp.path().join("split.json");
    split.save(&path).unwrap();
    let err = SubjectSplit::load(&path).unwrap_err().to_string();
    assert!(err.contains("is in both"), "{err}");

    let mut split = SubjectSplit::new(&ds, Fractions::default(), 0).unwrap();
    split.test.push("9999999".into());
    let err = split
        .check_against(&ds, Subset::Test)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("9999999") && err.contains("another dataset"),
        "{err}"
    );

    std::fs::write(&path, "{not json").unwrap();
    assert!(SubjectSplit::load(&path)
        .unwrap_err()
        .to_string()
        .contains("not a split file"));
}

#[test]
fn line_numbers_agree_for_lf_and_crlf_files() {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path(), &good_rows(), &[]);
    let csv = tmp.path().join("HandInfo.csv");
    let crlf = Dataset::load(tmp.path(), &LoadOptions::default())
        .unwrap()
        .0;
    std::fs::write(
        &csv,
        std::fs::read_to_string(&csv).unwrap().replace("\r\n", "\n"),
    )
    .unwrap();
    let lf = Dataset::load(tmp.path(), &LoadOptions::default())
        .unwrap()
        .0;
    let lines = |d: &Dataset| d.images.iter().map(|i| i.line).collect::<Vec<_>>();
    assert_eq!(lines(&crlf), vec![2, 3, 4, 5, 6]);
    assert_eq!(lines(&lf), lines(&crlf));
}
