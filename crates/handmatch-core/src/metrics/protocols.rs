//! The evaluation protocols: dorsal queries against a palmar gallery, at the level of
//! subject templates and of single images, with and without images showing accessories.
//! Only subjects with at least one dorsal and one palmar image (after any accessory
//! filtering) take part, so every query has a correct gallery item.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hand_image::Aspect;
use crate::template::mean_template;

use super::error::MetricsError;
use super::rank::rank_query;
use super::summary::RetrievalMetrics;

/// One photo's embedding (L2-normalised) with what the protocols need to know about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddedImage {
    pub subject: String,
    pub aspect: Aspect,
    /// Rings, watches and the like are visible in the photo.
    pub accessories: bool,
    pub embedding: Vec<f32>,
}

/// Whether images with accessories take part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accessories {
    Included,
    Excluded,
}

impl Accessories {
    fn name(self, included: &'static str, excluded: &'static str) -> &'static str {
        match self {
            Accessories::Included => included,
            Accessories::Excluded => excluded,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolResults {
    /// The reference study's protocol: each subject's dorsal template (mean of its dorsal
    /// embeddings) against one palmar template per subject.
    pub template_to_template: RetrievalMetrics,
    /// Every dorsal image alone against palmar templates: what the service answers.
    pub image_to_template: RetrievalMetrics,
    /// Every dorsal image against every palmar image; the rank is that of the first image
    /// of the right subject and AP runs over all of that subject's palmar images.
    pub image_to_image: RetrievalMetrics,
    /// The three protocols again without photos showing accessories; `None` where no
    /// subject keeps both aspects once those photos are left out (small or synthetic sets
    /// without accessory-free pairs), which is not an error of the data.
    pub template_to_template_no_accessories: Option<RetrievalMetrics>,
    pub image_to_template_no_accessories: Option<RetrievalMetrics>,
    pub image_to_image_no_accessories: Option<RetrievalMetrics>,
}

/// The six protocols' names as reports print them, in `ProtocolResults::named` order.
pub const PROTOCOL_NAMES: [&str; 6] = [
    "template → template",
    "image → template",
    "image → image",
    "template → template, no accessories",
    "image → template, no accessories",
    "image → image, no accessories",
];

impl ProtocolResults {
    /// Each protocol with its name, in report order; `None` for an absent accessory-free one.
    pub fn named(&self) -> [(&'static str, Option<&RetrievalMetrics>); 6] {
        let metrics = [
            Some(&self.template_to_template),
            Some(&self.image_to_template),
            Some(&self.image_to_image),
            self.template_to_template_no_accessories.as_ref(),
            self.image_to_template_no_accessories.as_ref(),
            self.image_to_image_no_accessories.as_ref(),
        ];
        std::array::from_fn(|i| (PROTOCOL_NAMES[i], metrics[i]))
    }
}

/// All six protocols over `images`. The three with every photo must have subjects with
/// both aspects; the accessory-free ones are absent when none is left.
pub fn evaluate_protocols(images: &[EmbeddedImage]) -> Result<ProtocolResults, MetricsError> {
    Ok(ProtocolResults {
        template_to_template: template_to_template(images, Accessories::Included)?,
        image_to_template: image_to_template(images, Accessories::Included)?,
        image_to_image: image_to_image(images, Accessories::Included)?,
        template_to_template_no_accessories: unless_empty(template_to_template(
            images,
            Accessories::Excluded,
        ))?,
        image_to_template_no_accessories: unless_empty(image_to_template(
            images,
            Accessories::Excluded,
        ))?,
        image_to_image_no_accessories: unless_empty(image_to_image(images, Accessories::Excluded))?,
    })
}

/// A protocol's metrics, or `None` when it had no eligible subject; other errors stay.
fn unless_empty(
    metrics: Result<RetrievalMetrics, MetricsError>,
) -> Result<Option<RetrievalMetrics>, MetricsError> {
    match metrics {
        Ok(m) => Ok(Some(m)),
        Err(MetricsError::NoEligibleSubjects { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn template_to_template(
    images: &[EmbeddedImage],
    accessories: Accessories,
) -> Result<RetrievalMetrics, MetricsError> {
    let subjects = eligible_subjects(
        images,
        accessories,
        accessories.name(
            "template_to_template",
            "template_to_template_no_accessories",
        ),
    )?;
    against_palmar_templates(&subjects, |dorsal| vec![template(dorsal)])
}

pub fn image_to_template(
    images: &[EmbeddedImage],
    accessories: Accessories,
) -> Result<RetrievalMetrics, MetricsError> {
    let subjects = eligible_subjects(
        images,
        accessories,
        accessories.name("image_to_template", "image_to_template_no_accessories"),
    )?;
    against_palmar_templates(&subjects, |dorsal| {
        dorsal.iter().map(|q| q.to_vec()).collect()
    })
}

/// Ranks each subject's queries (made from its dorsal embeddings) against every subject's
/// palmar template: the two template protocols differ only in how queries are formed.
fn against_palmar_templates(
    subjects: &BTreeMap<&str, SubjectViews<'_>>,
    queries: impl Fn(&[&[f32]]) -> Vec<Vec<f32>>,
) -> Result<RetrievalMetrics, MetricsError> {
    let gallery = palmar_templates(subjects);
    let mut ranks = Vec::new();
    let mut aps = Vec::new();
    for (subject, views) in subjects {
        for query in queries(&views.dorsal) {
            let r = rank_query(&query, &gallery.labels, &gallery.vectors, subject)?;
            ranks.push(r.rank);
            aps.push(r.average_precision);
        }
    }
    RetrievalMetrics::from_ranks(&ranks, &aps, gallery.labels.len())
}

pub fn image_to_image(
    images: &[EmbeddedImage],
    accessories: Accessories,
) -> Result<RetrievalMetrics, MetricsError> {
    let subjects = eligible_subjects(
        images,
        accessories,
        accessories.name("image_to_image", "image_to_image_no_accessories"),
    )?;
    let (labels, vectors): (Vec<&str>, Vec<&[f32]>) = subjects
        .iter()
        .flat_map(|(subject, views)| views.palmar.iter().map(move |v| (*subject, *v)))
        .unzip();
    let mut ranks = Vec::new();
    let mut aps = Vec::new();
    let mut correct = Vec::new();
    for (subject, views) in &subjects {
        for query in &views.dorsal {
            let r = rank_query(query, &labels, &vectors, subject)?;
            ranks.push(r.rank);
            aps.push(r.average_precision);
            correct.push(r.correct);
        }
    }
    RetrievalMetrics::from_ranks_with_correct_counts(&ranks, &aps, labels.len(), &correct)
}

/// A subject's embeddings by aspect, in input order.
#[derive(Default)]
struct SubjectViews<'a> {
    dorsal: Vec<&'a [f32]>,
    palmar: Vec<&'a [f32]>,
}

/// Subjects with both aspects, keyed (and so ordered) by subject id: the gallery order
/// then matches the server's tie-break on subject id.
fn eligible_subjects<'a>(
    images: &'a [EmbeddedImage],
    accessories: Accessories,
    protocol: &'static str,
) -> Result<BTreeMap<&'a str, SubjectViews<'a>>, MetricsError> {
    if let Some(first) = images.first() {
        let expected = first.embedding.len();
        if let Some(bad) = images.iter().find(|i| i.embedding.len() != expected) {
            return Err(MetricsError::EmbeddingDimension {
                subject: bad.subject.clone(),
                expected,
                found: bad.embedding.len(),
            });
        }
    }
    let mut subjects: BTreeMap<&str, SubjectViews> = BTreeMap::new();
    for image in images {
        if accessories == Accessories::Excluded && image.accessories {
            continue;
        }
        let views = subjects.entry(image.subject.as_str()).or_default();
        match image.aspect {
            Aspect::Dorsal => views.dorsal.push(&image.embedding),
            Aspect::Palmar => views.palmar.push(&image.embedding),
        }
    }
    subjects.retain(|_, v| !v.dorsal.is_empty() && !v.palmar.is_empty());
    if subjects.is_empty() {
        return Err(MetricsError::NoEligibleSubjects { protocol });
    }
    Ok(subjects)
}

struct TemplateGallery<'a> {
    labels: Vec<&'a str>,
    vectors: Vec<Vec<f32>>,
}

fn palmar_templates<'a>(subjects: &BTreeMap<&'a str, SubjectViews<'_>>) -> TemplateGallery<'a> {
    let (labels, vectors) = subjects
        .iter()
        .map(|(subject, views)| (*subject, template(&views.palmar)))
        .unzip();
    TemplateGallery { labels, vectors }
}

/// The shared template definition; `embeddings` is never empty for an eligible subject.
fn template(embeddings: &[&[f32]]) -> Vec<f32> {
    let dim = embeddings.first().map_or(0, |e| e.len());
    mean_template(embeddings.iter().copied(), dim).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(subject: &str, aspect: Aspect, accessories: bool, e: [f32; 2]) -> EmbeddedImage {
        EmbeddedImage {
            subject: subject.into(),
            aspect,
            accessories,
            embedding: e.to_vec(),
        }
    }

    /// a: palmar [1,0] and [0,1]; dorsal [1,0] and [0,1] (the latter with accessories).
    /// b: palmar [1,0]; dorsal [0.6,0.8].
    /// e: dorsal [-1,0]; palmar [-1,0] with accessories, so e drops out without them.
    /// c (dorsal only) and d (palmar only) never take part.
    fn images() -> Vec<EmbeddedImage> {
        use Aspect::{Dorsal, Palmar};
        vec![
            image("b", Palmar, false, [1.0, 0.0]),
            image("a", Palmar, false, [1.0, 0.0]),
            image("a", Dorsal, false, [1.0, 0.0]),
            image("c", Dorsal, false, [1.0, 0.0]),
            image("a", Palmar, false, [0.0, 1.0]),
            image("b", Dorsal, false, [0.6, 0.8]),
            image("a", Dorsal, true, [0.0, 1.0]),
            image("d", Palmar, false, [0.6, 0.8]),
            image("e", Dorsal, false, [-1.0, 0.0]),
            image("e", Palmar, true, [-1.0, 0.0]),
        ]
    }

    fn headline(m: &RetrievalMetrics) -> Vec<f64> {
        vec![m.recall[0].value, m.mean_rank, m.mean_ap]
    }

    fn assert_close(actual: Vec<f64>, expected: [f64; 3]) {
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < 1e-6, "{actual:?} vs {expected:?}");
        }
    }

    #[test]
    fn template_to_template_on_tiny_example() {
        // Gallery a = [.71,.71], b = [1,0], e = [-1,0]. Queries: a -> 1, b [.6,.8] -> a
        // scores .99 over b's .6 so 2, e -> 1.
        let m = template_to_template(&images(), Accessories::Included).unwrap();
        assert_eq!((m.queries, m.gallery_size), (3, 3));
        assert_close(headline(&m), [2.0 / 3.0, 4.0 / 3.0, 2.5 / 3.0]);
        // Without accessories a's dorsal template is [1,0], closer to b's [1,0]: rank 2.
        let m = template_to_template(&images(), Accessories::Excluded).unwrap();
        assert_eq!((m.queries, m.gallery_size), (2, 2));
        assert_close(headline(&m), [0.0, 2.0, 0.5]);
    }

    #[test]
    fn image_to_template_on_tiny_example() {
        // a [1,0] -> 2 (b's [1,0] beats a's [.71,.71]), a [0,1] -> 1, b -> 2, e -> 1.
        let m = image_to_template(&images(), Accessories::Included).unwrap();
        assert_eq!((m.queries, m.gallery_size), (4, 3));
        assert_close(headline(&m), [0.5, 1.5, 0.75]);
        let m = image_to_template(&images(), Accessories::Excluded).unwrap();
        assert_eq!((m.queries, m.gallery_size), (2, 2));
        assert_close(headline(&m), [0.0, 2.0, 0.5]);
    }

    #[test]
    fn image_to_image_on_tiny_example() {
        // Gallery: a[1,0], a[0,1], b[1,0], e[-1,0].
        // a [1,0]: a[1,0] ties b[1,0] and wins on label: rank 1, AP (1 + 2/3)/2 = 5/6.
        // a [0,1]: rank 1, AP 1. b [.6,.8]: a[0,1] .8, a[1,0] .6 ties b .6: rank 3, AP 1/3.
        // e: rank 1, AP 1.
        let m = image_to_image(&images(), Accessories::Included).unwrap();
        assert_eq!((m.queries, m.gallery_size), (4, 4));
        assert_close(
            headline(&m),
            [0.75, 1.5, (5.0 / 6.0 + 1.0 + 1.0 / 3.0 + 1.0) / 4.0],
        );
        // Chance at k = 1: a's queries have 2 of 4 correct, b and e 1 of 4.
        assert!((m.recall[0].chance - (0.5 + 0.5 + 0.25 + 0.25) / 4.0).abs() < 1e-12);

        let m = image_to_image(&images(), Accessories::Excluded).unwrap();
        assert_eq!((m.queries, m.gallery_size), (2, 3));
        assert_close(headline(&m), [0.5, 2.0, (5.0 / 6.0 + 1.0 / 3.0) / 2.0]);
        assert!((m.recall[0].chance - (2.0 / 3.0 + 1.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn all_six_results_and_named_failures() {
        let results = evaluate_protocols(&images()).unwrap();
        let no_accessories = results.image_to_image_no_accessories.as_ref().unwrap();
        assert_eq!(no_accessories.queries, 2);
        assert!(serde_json::to_string(&results).is_ok());

        let mut bad = images();
        bad[3].embedding.push(0.0);
        assert!(matches!(
            evaluate_protocols(&bad),
            Err(MetricsError::EmbeddingDimension { .. })
        ));
        let dorsal_only: Vec<_> = images()
            .into_iter()
            .filter(|i| i.aspect == Aspect::Dorsal)
            .collect();
        assert_eq!(
            evaluate_protocols(&dorsal_only),
            Err(MetricsError::NoEligibleSubjects {
                protocol: "template_to_template"
            })
        );
    }

    /// A set where every photo shows accessories still has its three main protocols; the
    /// accessory-free ones are absent rather than failing the whole evaluation.
    #[test]
    fn accessory_free_protocols_are_absent_when_no_subject_qualifies() {
        let only_accessories: Vec<_> = images()
            .into_iter()
            .map(|mut i| {
                i.accessories = true;
                i
            })
            .collect();
        let results = evaluate_protocols(&only_accessories).unwrap();
        let full = evaluate_protocols(&images()).unwrap();
        assert_eq!(results.template_to_template, full.template_to_template);
        assert_eq!(results.image_to_image, full.image_to_image);
        assert!(results.template_to_template_no_accessories.is_none());
        assert!(results.image_to_template_no_accessories.is_none());
        assert!(results.image_to_image_no_accessories.is_none());
    }
}
