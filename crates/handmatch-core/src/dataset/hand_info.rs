//! `HandInfo.csv` (the original 11k Hands header, quoting and CRLF line endings) read into
//! `HandImage`s whose files exist. Problems are reported with their line numbers; the caller
//! decides whether they are fatal or skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::hand_image::{Aspect, HandImage, Side};

pub const CSV_NAME: &str = "HandInfo.csv";
pub const IMAGES_DIR: &str = "Hands";
pub const HEADER: [&str; 9] = [
    "id",
    "age",
    "gender",
    "skinColor",
    "accessories",
    "nailPolish",
    "aspectOfHand",
    "imageName",
    "irregularities",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OnProblem {
    /// The first bad row fails the load.
    #[default]
    Error,
    /// Bad rows are left out and counted.
    Skip,
}

#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub on_problem: OnProblem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    MissingFile,
    UnknownAspect,
    Malformed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub line: usize,
    pub kind: ProblemKind,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub rows: usize,
    pub loaded: usize,
    pub problems: Vec<Problem>,
}

impl LoadReport {
    pub fn count(&self, kind: ProblemKind) -> usize {
        self.problems.iter().filter(|p| p.kind == kind).count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: no such folder")]
    NoFolder { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the file is empty")]
    Empty { path: PathBuf },
    #[error("{path}: line 1: header is {found:?}, expected {expected:?}")]
    Header {
        path: PathBuf,
        found: Vec<String>,
        expected: Vec<&'static str>,
    },
    #[error("{path}: line {line}: {message}")]
    Row {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: no images left after loading ({rows} rows)")]
    NoImages { path: PathBuf, rows: usize },
}

/// Which images to keep.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub aspect: Option<Aspect>,
    pub side: Option<Side>,
    pub exclude_accessories: bool,
    pub exclude_irregular: bool,
}

impl Filter {
    pub fn keeps(&self, img: &HandImage) -> bool {
        self.aspect.is_none_or(|a| a == img.aspect)
            && self.side.is_none_or(|s| s == img.side)
            && !(self.exclude_accessories && img.accessories)
            && !(self.exclude_irregular && img.irregular)
    }
}

/// How many images of each view a subject has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewCounts {
    pub dorsal: usize,
    pub palmar: usize,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub root: PathBuf,
    pub images: Vec<HandImage>,
}

fn check_header(reader: &mut csv::Reader<&[u8]>, csv_path: &Path) -> Result<(), DatasetError> {
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| DatasetError::Row {
            path: csv_path.to_path_buf(),
            line: 1,
            message: e.to_string(),
        })?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
        .collect();
    if header != HEADER {
        return Err(DatasetError::Header {
            path: csv_path.to_path_buf(),
            found: header,
            expected: HEADER.to_vec(),
        });
    }
    Ok(())
}

/// 1-based line numbers from byte offsets. The csv crate's own line counter is one short
/// in CRLF files (a record there starts at the LF of the previous CRLF), so lines are
/// counted from the record's byte offset.
struct LineIndex {
    newlines: Vec<u64>,
}

impl LineIndex {
    fn new(bytes: &[u8]) -> Self {
        let newlines = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i as u64)
            .collect();
        Self { newlines }
    }

    fn line_at(&self, pos: Option<&csv::Position>, fallback: usize) -> usize {
        pos.map_or(fallback, |p| {
            1 + self.newlines.partition_point(|&n| n <= p.byte())
        })
    }
}

impl Dataset {
    /// Reads `root/HandInfo.csv`; images are looked up in `root/Hands/`, else in `root`.
    pub fn load(root: &Path, opts: &LoadOptions) -> Result<(Dataset, LoadReport), DatasetError> {
        if !root.is_dir() {
            return Err(DatasetError::NoFolder { path: root.into() });
        }
        let csv_path = root.join(CSV_NAME);
        let bytes = std::fs::read(&csv_path).map_err(|source| DatasetError::Io {
            path: csv_path.clone(),
            source,
        })?;
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(DatasetError::Empty { path: csv_path });
        }
        let images_dir = if root.join(IMAGES_DIR).is_dir() {
            root.join(IMAGES_DIR)
        } else {
            root.to_path_buf()
        };
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(bytes.as_slice());
        check_header(&mut reader, &csv_path)?;
        let lines = LineIndex::new(&bytes);
        let line_at = |pos: Option<&csv::Position>, fallback: usize| lines.line_at(pos, fallback);
        let mut report = LoadReport::default();
        let mut images = Vec::new();
        for record in reader.records() {
            report.rows += 1;
            let parsed = match record {
                Ok(r) => parse_row(&r, line_at(r.position(), report.rows + 1), &images_dir),
                Err(e) => Err(Problem {
                    line: line_at(e.position(), report.rows + 1),
                    kind: ProblemKind::Malformed,
                    message: e.to_string(),
                }),
            };
            match parsed {
                Ok(img) => images.push(img),
                Err(problem) if opts.on_problem == OnProblem::Skip => report.problems.push(problem),
                Err(problem) => {
                    return Err(DatasetError::Row {
                        path: csv_path,
                        line: problem.line,
                        message: problem.message,
                    })
                }
            }
        }
        report.loaded = images.len();
        if images.is_empty() {
            return Err(DatasetError::NoImages {
                path: csv_path,
                rows: report.rows,
            });
        }
        Ok((
            Dataset {
                root: root.into(),
                images,
            },
            report,
        ))
    }

    pub fn filtered(&self, filter: &Filter) -> Dataset {
        Dataset {
            root: self.root.clone(),
            images: self
                .images
                .iter()
                .filter(|i| filter.keeps(i))
                .cloned()
                .collect(),
        }
    }

    pub fn subjects(&self) -> BTreeMap<&str, ViewCounts> {
        let mut out: BTreeMap<&str, ViewCounts> = BTreeMap::new();
        for img in &self.images {
            let c = out.entry(img.subject.as_str()).or_default();
            match img.aspect {
                Aspect::Dorsal => c.dorsal += 1,
                Aspect::Palmar => c.palmar += 1,
            }
        }
        out
    }

    /// The images of the given subjects, in file order.
    pub fn of_subjects<'a>(
        &'a self,
        subjects: &'a BTreeSet<String>,
    ) -> impl Iterator<Item = &'a HandImage> + 'a {
        self.images
            .iter()
            .filter(move |i| subjects.contains(&i.subject))
    }
}

fn parse_row(r: &csv::StringRecord, line: usize, images_dir: &Path) -> Result<HandImage, Problem> {
    let malformed = |message: String| Problem {
        line,
        kind: ProblemKind::Malformed,
        message,
    };
    if r.len() != HEADER.len() {
        return Err(malformed(format!(
            "{} fields, expected {}",
            r.len(),
            HEADER.len()
        )));
    }
    let field = |i: usize| r[i].trim();
    let flag = |i: usize| match field(i) {
        "0" | "" => Ok(false),
        "1" => Ok(true),
        other => Err(malformed(format!(
            "`{}` is {other:?}, expected 0 or 1",
            HEADER[i]
        ))),
    };
    let subject = field(0);
    if subject.is_empty() {
        return Err(malformed("`id` is empty".into()));
    }
    let age = match field(1) {
        "" => None,
        a => Some(
            a.parse::<u32>()
                .map_err(|_| malformed(format!("`age` is {a:?}, expected a whole number")))?,
        ),
    };
    let aspect_text = field(6).to_ascii_lowercase();
    let mut words = aspect_text.split_whitespace();
    let (aspect, side) = match (words.next(), words.next(), words.next()) {
        (Some(a), Some(s), None) => {
            let aspect = match a {
                "dorsal" => Aspect::Dorsal,
                "palmar" => Aspect::Palmar,
                _ => None.ok_or_else(|| unknown_aspect(line, field(6)))?,
            };
            let side = match s {
                "left" => Side::Left,
                "right" => Side::Right,
                _ => None.ok_or_else(|| unknown_aspect(line, field(6)))?,
            };
            (aspect, side)
        }
        _ => return Err(unknown_aspect(line, field(6))),
    };
    let image_name = field(7);
    if image_name.is_empty() || image_name.contains(['/', '\\']) || image_name == ".." {
        return Err(malformed(format!(
            "`imageName` {image_name:?} is not a plain file name"
        )));
    }
    let path = images_dir.join(image_name);
    if !path.is_file() {
        return Err(Problem {
            line,
            kind: ProblemKind::MissingFile,
            message: format!("image {} does not exist", path.display()),
        });
    }
    Ok(HandImage {
        subject: subject.to_string(),
        aspect,
        side,
        image_name: image_name.to_string(),
        path,
        age,
        gender: field(2).to_string(),
        skin_color: field(3).to_string(),
        accessories: flag(4)?,
        nail_polish: flag(5)?,
        irregular: flag(8)?,
        line,
    })
}

fn unknown_aspect(line: usize, text: &str) -> Problem {
    Problem {
        line,
        kind: ProblemKind::UnknownAspect,
        message: format!("`aspectOfHand` is {text:?}, expected \"dorsal|palmar left|right\""),
    }
}
