//! The synthetic hand generator: byte-identical output, the 11k Hands CSV format, errors, and
//! (most important) that a subject's identity survives the change from palm to back of the hand.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use handmatch_core::dataset::hand_info::{Dataset, LoadOptions};
use handmatch_core::dataset::synth::{contact_sheet, generate, SynthError, SynthOptions};
use sha2::{Digest, Sha256};

/// SHA-256 over `HandInfo.csv` and then every image, in file-name order, for `pinned_options()`.
/// Changing how hands are drawn changes this on purpose: regenerate it and look at
/// `docs/synthetic-hands.png` before committing. A new `image` release may also change it (its JPEG
/// encoder writes the bytes); the platform does not, as the generator avoids libm functions.
const PINNED_DIGEST: &str = "6be5c4ec3b1e426b03fa3e8bf05fdf622ea0a2385af4504c5c855cded32dd6d5";

fn pinned_options() -> SynthOptions {
    SynthOptions {
        subjects: 3,
        seed: 7,
        width: 160,
        height: 120,
        per_view_min: 1,
        per_view_max: 1,
    }
}

fn image_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir.join("Hands"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn digest(dir: &Path) -> String {
    let mut hasher = Sha256::new();
    hasher.update(fs::read(dir.join("HandInfo.csv")).unwrap());
    for name in image_names(dir) {
        hasher.update(fs::read(dir.join("Hands").join(name)).unwrap());
    }
    hex::encode(hasher.finalize())
}

#[test]
fn same_options_give_byte_identical_files() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let opts = SynthOptions {
        subjects: 2,
        seed: 3,
        ..SynthOptions::default()
    };
    generate(&opts, a.path()).unwrap();
    generate(&opts, b.path()).unwrap();
    assert_eq!(
        fs::read(a.path().join("HandInfo.csv")).unwrap(),
        fs::read(b.path().join("HandInfo.csv")).unwrap()
    );
    let names = image_names(a.path());
    assert_eq!(names, image_names(b.path()));
    for name in &names {
        let read = |dir: &Path| fs::read(dir.join("Hands").join(name)).unwrap();
        assert!(read(a.path()) == read(b.path()), "{name} differs");
    }
}

#[test]
fn output_matches_pinned_digest() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(&pinned_options(), dir.path()).unwrap();
    assert_eq!((summary.subjects, summary.images), (3, 12));
    assert_eq!(digest(dir.path()), PINNED_DIGEST);
}

#[test]
fn more_subjects_leave_earlier_subjects_unchanged() {
    let (few, more) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut opts = pinned_options();
    generate(&opts, few.path()).unwrap();
    opts.subjects = 5;
    generate(&opts, more.path()).unwrap();
    let names = image_names(few.path());
    for name in &names {
        let read = |dir: &Path| fs::read(dir.join("Hands").join(name)).unwrap();
        assert!(read(few.path()) == read(more.path()), "{name} differs");
    }
    let csv_few = fs::read_to_string(few.path().join("HandInfo.csv")).unwrap();
    let csv_more = fs::read_to_string(more.path().join("HandInfo.csv")).unwrap();
    assert!(csv_more.starts_with(&csv_few));
}

/// One parsed `HandInfo.csv` line.
struct Row {
    id: String,
    skin: String,
    accessories: u8,
    nail_polish: u8,
    aspect: String,
    image_name: String,
}

/// Checks the exact 11k Hands spelling of one line and parses it.
fn parse_line(line: &str) -> Row {
    let fields: Vec<&str> = line.split(',').collect();
    assert_eq!(fields.len(), 9, "{line}");
    let quoted = |i: usize| {
        let f = fields[i];
        assert!(
            f.len() >= 2 && f.starts_with('"') && f.ends_with('"'),
            "field {i} not quoted: {line}"
        );
        f[1..f.len() - 1].to_owned()
    };
    let number = |i: usize| {
        let f = fields[i];
        assert!(
            !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()),
            "field {i} not a bare number: {line}"
        );
        f.parse::<u32>().unwrap()
    };
    let age = number(1);
    assert!((18..=75).contains(&age), "{line}");
    assert!(["male", "female"].contains(&quoted(2).as_str()), "{line}");
    assert_eq!(number(8), 0, "{line}");
    Row {
        id: quoted(0),
        skin: quoted(3),
        accessories: number(4) as u8,
        nail_polish: number(5) as u8,
        aspect: quoted(6),
        image_name: quoted(7),
    }
}

// Long on purpose: one check per column of the original HandInfo.csv, in column order.
#[test]
fn hand_info_csv_matches_the_11k_hands_format() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        subjects: 6,
        seed: 11,
        width: 96,
        height: 72,
        per_view_min: 1,
        per_view_max: 3,
    };
    let summary = generate(&opts, dir.path()).unwrap();
    let text = fs::read_to_string(dir.path().join("HandInfo.csv")).unwrap();
    assert!(text.ends_with("\r\n"));
    assert_eq!(
        text.matches('\n').count(),
        text.matches("\r\n").count(),
        "every line ends with CRLF"
    );
    let mut lines = text.split_terminator("\r\n");
    assert_eq!(
        lines.next(),
        Some(
            "id,age,gender,skinColor,accessories,nailPolish,aspectOfHand,imageName,irregularities"
        )
    );
    let rows: Vec<Row> = lines.map(parse_line).collect();
    assert_eq!(rows.len(), summary.images);
    assert!(!dir.path().join("HandInfo.csv.tmp").exists());

    let mut per_view: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.image_name, format!("Hand_{i:07}.jpg"));
        let photo = image::open(dir.path().join("Hands").join(&row.image_name)).unwrap();
        assert_eq!((photo.width(), photo.height()), (96, 72));
        assert!(
            ["dorsal right", "dorsal left", "palmar right", "palmar left"]
                .contains(&row.aspect.as_str()),
            "{}",
            row.aspect
        );
        assert!(["very fair", "fair", "medium", "dark"].contains(&row.skin.as_str()));
        assert!(row.accessories <= 1 && row.nail_polish <= 1);
        *per_view
            .entry((row.id.clone(), row.aspect.clone()))
            .or_default() += 1;
    }
    assert_eq!(image_names(dir.path()).len(), rows.len());

    let ids: Vec<String> = (0..6).map(|s| format!("{}", 9_000_000 + s)).collect();
    for id in &ids {
        let subject: Vec<&Row> = rows.iter().filter(|r| &r.id == id).collect();
        // Per-subject labels are the same on every image of that subject.
        assert!(subject
            .iter()
            .all(|r| (&r.skin, r.accessories, r.nail_polish)
                == (
                    &subject[0].skin,
                    subject[0].accessories,
                    subject[0].nail_polish
                )));
        for aspect in ["dorsal right", "dorsal left", "palmar right", "palmar left"] {
            let count = per_view
                .get(&(id.clone(), aspect.to_owned()))
                .copied()
                .unwrap_or(0);
            assert!((1..=3).contains(&count), "{id} {aspect}: {count}");
        }
    }
    // The project's own loader reads every row back.
    let (dataset, report) = Dataset::load(dir.path(), &LoadOptions::default()).unwrap();
    assert_eq!((report.loaded, report.problems.len()), (rows.len(), 0));
    for (image, row) in dataset.images.iter().zip(&rows) {
        let aspect = format!("{} {}", image.aspect.as_str(), image.side.as_str());
        assert_eq!(
            (&image.subject, &aspect, &image.image_name),
            (&row.id, &row.aspect, &row.image_name)
        );
        assert_eq!(
            (image.accessories, image.nail_polish, image.irregular),
            (row.accessories == 1, row.nail_polish == 1, false)
        );
    }
    assert_eq!(
        per_view
            .keys()
            .map(|(id, _)| id)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        6
    );
}

#[test]
fn invalid_options_are_rejected_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, SynthOptions); 6] = [
        (
            "subjects",
            SynthOptions {
                subjects: 0,
                ..SynthOptions::default()
            },
        ),
        (
            "width",
            SynthOptions {
                width: 63,
                ..SynthOptions::default()
            },
        ),
        (
            "height",
            SynthOptions {
                height: 4097,
                ..SynthOptions::default()
            },
        ),
        (
            "width",
            SynthOptions {
                width: 5000,
                ..SynthOptions::default()
            },
        ),
        (
            "per_view_min",
            SynthOptions {
                per_view_min: 4,
                per_view_max: 3,
                ..SynthOptions::default()
            },
        ),
        (
            "per_view_max",
            SynthOptions {
                per_view_min: 0,
                per_view_max: 0,
                ..SynthOptions::default()
            },
        ),
    ];
    for (option, opts) in cases {
        let err = generate(&opts, dir.path()).unwrap_err();
        assert!(
            matches!(&err, SynthError::InvalidOption { option: o, .. } if *o == option),
            "{err:?}"
        );
        assert!(err.to_string().contains(option), "{err}");
    }
    // Nothing was written for invalid options.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn unwritable_output_path_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-folder");
    fs::write(&file, b"x").unwrap();
    let out = file.join("data");
    let err = generate(&pinned_options(), &out).unwrap_err();
    assert!(matches!(err, SynthError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("not-a-folder"), "{err}");
}

#[test]
fn contact_sheet_shows_one_subject() {
    let dir = tempfile::tempdir().unwrap();
    generate(&pinned_options(), dir.path()).unwrap();
    let png = dir.path().join("sheet.png");
    contact_sheet(dir.path(), "9000001", &png).unwrap();
    let sheet = image::open(&png).unwrap();
    assert!(
        sheet.width() > 4 * 160 && sheet.height() > 120,
        "{}x{}",
        sheet.width(),
        sheet.height()
    );

    let err = contact_sheet(dir.path(), "1234567", &png).unwrap_err();
    assert!(err.to_string().contains("1234567"), "{err}");
    let missing = dir.path().join("missing");
    let err = contact_sheet(&missing, "9000001", &png).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Identity across views: a hand-crafted descriptor must match the back of each hand to the same
// subject's palm far above chance.

/// Skin colour and silhouette shape of one photo, invariant to the photo's rotation, scale,
/// brightness and mirroring.
#[derive(Clone)]
struct Descriptor {
    colour: Vec<f64>,
    shape: Vec<f64>,
}

const PROFILE_BINS: usize = 24;

// Long on purpose: the descriptor's measurements (colour, silhouette, profile) are taken in
// one pass over the pixels.
fn describe(path: &Path) -> Descriptor {
    let photo = image::open(path).unwrap().to_rgb8();
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    let px = |x: usize, y: usize| {
        let p = photo.get_pixel(x as u32, y as u32).0;
        [f64::from(p[0]), f64::from(p[1]), f64::from(p[2])]
    };
    // Background: per-channel median of the left, right and bottom borders.
    let mut border: Vec<[f64; 3]> = Vec::new();
    for y in 0..h {
        border.push(px(0, y));
        border.push(px(w - 1, y));
    }
    for x in 0..w {
        border.push(px(x, h - 1));
    }
    let background: [f64; 3] = [0, 1, 2].map(|c| {
        let mut v: Vec<f64> = border.iter().map(|p| p[c]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    });
    let mut points: Vec<(f64, f64)> = Vec::new();
    let mut colours: Vec<[f64; 3]> = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let p = px(x, y);
            let diff = (0..3)
                .map(|c| (p[c] - background[c]).abs())
                .fold(0.0, f64::max);
            if diff > 24.0 {
                points.push((x as f64, y as f64));
                colours.push(p);
            }
        }
    }
    assert!(points.len() > 200, "{}: no hand found", path.display());

    // Principal axis of the silhouette, pointing away from the top edge (towards the fingers).
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |a, p| (a.0 + p.0 / n, a.1 + p.1 / n));
    let (mut cxx, mut cyy, mut cxy) = (0.0, 0.0, 0.0);
    for &(x, y) in &points {
        cxx += (x - mx) * (x - mx);
        cyy += (y - my) * (y - my);
        cxy += (x - mx) * (y - my);
    }
    let angle = 0.5 * (2.0 * cxy).atan2(cxx - cyy);
    let (mut ux, mut uy) = (angle.cos(), angle.sin());
    if uy < 0.0 {
        (ux, uy) = (-ux, -uy);
    }
    let along: Vec<f64> = points.iter().map(|&(x, y)| x * ux + y * uy).collect();
    let tip = along.iter().copied().fold(f64::MIN, f64::max);
    let mut width_at =
        vec![0.0f64; (tip - along.iter().copied().fold(f64::MAX, f64::min)) as usize + 2];
    for a in &along {
        width_at[(tip - a) as usize] += 1.0;
    }
    // Hand width: a high percentile of the width profile (the palm, thumb included).
    let mut sorted = width_at.clone();
    sorted.sort_by(f64::total_cmp);
    let scale = sorted[sorted.len() * 9 / 10].max(1.0);
    // Width profile from the fingertips up, in units of the hand width.
    let shape = (0..PROFILE_BINS)
        .map(|bin| {
            let from = (bin as f64 * 0.06 * scale) as usize;
            let to = (((bin + 1) as f64 * 0.06 * scale) as usize).max(from + 1);
            let slice = &width_at[from.min(width_at.len())..to.min(width_at.len())];
            slice.iter().sum::<f64>() / slice.len().max(1) as f64 / scale
        })
        .collect();

    // Skin chromaticity and lightness relative to the background, over the hand (not the arm).
    let mut sum = [0.0; 3];
    let mut count = 0.0f64;
    for (a, c) in along.iter().zip(&colours) {
        if tip - a < 1.4 * scale {
            for i in 0..3 {
                sum[i] += c[i];
            }
            count += 1.0;
        }
    }
    let mean = sum.map(|s| s / count.max(1.0));
    let total = mean.iter().sum::<f64>().max(1.0);
    let colour = vec![
        mean[0] / total,
        mean[1] / total,
        total / background.iter().sum::<f64>(),
    ];
    Descriptor { colour, shape }
}

/// z-scores every feature over a set of descriptors (the view's own statistics), so that the
/// systematic palm/back difference in colour does not count as a mismatch.
fn standardise(descriptors: &mut [Descriptor]) {
    fn column_stats(rows: &[Vec<f64>], i: usize) -> (f64, f64) {
        let n = rows.len() as f64;
        let mean = rows.iter().map(|r| r[i]).sum::<f64>() / n;
        let var = rows.iter().map(|r| (r[i] - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt().max(1e-9))
    }
    fn colour(d: &mut Descriptor) -> &mut Vec<f64> {
        &mut d.colour
    }
    fn shape(d: &mut Descriptor) -> &mut Vec<f64> {
        &mut d.shape
    }
    for pick in [colour, shape] {
        let rows: Vec<Vec<f64>> = descriptors.iter_mut().map(|d| pick(d).clone()).collect();
        let stats: Vec<(f64, f64)> = (0..rows[0].len()).map(|i| column_stats(&rows, i)).collect();
        for d in descriptors.iter_mut() {
            for (v, (mean, sd)) in pick(d).iter_mut().zip(&stats) {
                *v = (*v - mean) / sd;
            }
        }
    }
}

fn distance(a: &Descriptor, b: &Descriptor, colour_weight: f64, shape_weight: f64) -> f64 {
    let sq = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| (p - q).powi(2)).sum::<f64>();
    colour_weight * sq(&a.colour, &b.colour) / a.colour.len() as f64
        + shape_weight * sq(&a.shape, &b.shape) / a.shape.len() as f64
}

/// Fraction of dorsal photos whose nearest palmar template (the mean of a subject's palmar
/// descriptors) belongs to the same subject.
fn recall_at_1(
    queries: &[(String, Descriptor)],
    templates: &BTreeMap<String, Descriptor>,
    colour_weight: f64,
    shape_weight: f64,
) -> f64 {
    let hits = queries
        .iter()
        .filter(|(subject, q)| {
            let best = templates
                .iter()
                .min_by(|a, b| {
                    distance(q, a.1, colour_weight, shape_weight).total_cmp(&distance(
                        q,
                        b.1,
                        colour_weight,
                        shape_weight,
                    ))
                })
                .unwrap();
            best.0 == subject
        })
        .count();
    hits as f64 / queries.len() as f64
}

#[test]
fn identity_survives_from_palm_to_back_of_the_hand() {
    const SUBJECTS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions {
        subjects: SUBJECTS,
        seed: 2024,
        per_view_min: 2,
        per_view_max: 2,
        ..SynthOptions::default()
    };
    generate(&opts, dir.path()).unwrap();
    let text = fs::read_to_string(dir.path().join("HandInfo.csv")).unwrap();
    let rows: Vec<Row> = text
        .split_terminator("\r\n")
        .skip(1)
        .map(parse_line)
        .collect();
    let describe_view = |dorsal: bool| -> Vec<(String, Descriptor)> {
        let mut out: Vec<(String, Descriptor)> = rows
            .iter()
            .filter(|r| r.aspect.starts_with("dorsal") == dorsal)
            .map(|r| {
                let path: PathBuf = dir.path().join("Hands").join(&r.image_name);
                (r.id.clone(), describe(&path))
            })
            .collect();
        let mut descriptors: Vec<Descriptor> = out.iter().map(|(_, d)| d.clone()).collect();
        standardise(&mut descriptors);
        for ((_, d), s) in out.iter_mut().zip(descriptors) {
            *d = s;
        }
        out
    };
    let queries = describe_view(true);
    let palmar = describe_view(false);
    let mut templates: BTreeMap<String, Descriptor> = BTreeMap::new();
    for id in palmar.iter().map(|(id, _)| id.clone()) {
        if templates.contains_key(&id) {
            continue;
        }
        let mine: Vec<&Descriptor> = palmar
            .iter()
            .filter(|(s, _)| *s == id)
            .map(|(_, d)| d)
            .collect();
        let mean = |pick: fn(&Descriptor) -> &Vec<f64>| -> Vec<f64> {
            (0..pick(mine[0]).len())
                .map(|i| mine.iter().map(|d| pick(d)[i]).sum::<f64>() / mine.len() as f64)
                .collect()
        };
        templates.insert(
            id,
            Descriptor {
                colour: mean(|d| &d.colour),
                shape: mean(|d| &d.shape),
            },
        );
    }
    let chance = 1.0 / SUBJECTS as f64;
    let both = recall_at_1(&queries, &templates, 1.0, 1.0);
    let colour_only = recall_at_1(&queries, &templates, 1.0, 0.0);
    let shape_only = recall_at_1(&queries, &templates, 0.0, 1.0);
    println!(
        "dorsal→palmar R@1 over {SUBJECTS} subjects: {both:.3} (colour only {colour_only:.3}, \
         shape only {shape_only:.3}, chance {chance:.3})"
    );
    // Measured 0.925 (colour only 0.338, shape only 0.875) when this was written.
    assert!(
        both >= 10.0 * chance,
        "R@1 {both:.3} is not far above chance {chance:.3}"
    );
}
