//! `GalleryIndex`: the exact in-memory index of one gallery's enrolled templates. Each
//! subject is scored by the cosine similarity between the query and its template (the
//! normalised mean of its templates of the requested aspect), kept as one row per subject
//! and aspect (`RowStore`: f32 sums or f16 means) so that a million-subject gallery holds
//! each embedding once. The store is the source of truth: the index is loaded from it at
//! start and updated after every committed write.

use std::collections::HashMap;

use handmatch_core::hand_image::Aspect;

use super::rows::{IndexPrecision, RowStore};
use super::top_k::TopK;

#[derive(Debug, Clone, PartialEq)]
pub struct IndexedTemplate {
    pub template_id: i64,
    pub aspect: Aspect,
    pub embedding: Vec<f32>,
}

/// A ranked candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub subject_id: String,
    pub score: f32,
}

/// How a gallery's index stores and searches its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSettings {
    pub precision: IndexPrecision,
    /// Threads one large search may use.
    pub search_threads: usize,
}

impl Default for IndexSettings {
    fn default() -> Self {
        Self {
            precision: IndexPrecision::F32,
            search_threads: 1,
        }
    }
}

/// One aspect's subject templates as a dense row-major matrix (`RowStore`), so a search is
/// one pass over contiguous memory. Rows are updated in place; removal swaps in the last.
struct TemplateMatrix {
    subjects: Vec<String>,
    rows: RowStore,
    slot: HashMap<String, usize>,
}

impl TemplateMatrix {
    fn new(settings: IndexSettings, dim: usize) -> Self {
        Self {
            subjects: Vec::new(),
            rows: RowStore::new(settings.precision, dim),
            slot: HashMap::new(),
        }
    }

    fn add(&mut self, subject: &str, embedding: &[f32]) {
        let i = match self.slot.get(subject) {
            Some(&i) => i,
            None => {
                self.slot.insert(subject.to_string(), self.subjects.len());
                self.subjects.push(subject.to_string());
                self.rows.push_empty();
                self.subjects.len() - 1
            }
        };
        self.rows.add(i, embedding);
    }

    fn remove(&mut self, subject: &str) {
        let Some(i) = self.slot.remove(subject) else {
            return;
        };
        self.rows.swap_remove(i);
        self.subjects.swap_remove(i);
        if let Some(moved) = self.subjects.get(i) {
            self.slot.insert(moved.clone(), i);
        }
    }

    /// Candidates of each query, best first, ties to the smaller subject id.
    fn ranked(&self, top: TopK, top_k: usize) -> Vec<Match> {
        let mut found = top.into_candidates();
        found.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then_with(|| self.subjects[a.1 as usize].cmp(&self.subjects[b.1 as usize]))
        });
        found.truncate(top_k);
        found
            .into_iter()
            .map(|(score, i)| Match {
                subject_id: self.subjects[i as usize].clone(),
                score,
            })
            .collect()
    }
}

/// What the index keeps of each template once it is in its subject's row.
struct TemplateRef {
    template_id: i64,
}

pub struct GalleryIndex {
    dim: usize,
    settings: IndexSettings,
    templates: HashMap<String, Vec<TemplateRef>>,
    dorsal: TemplateMatrix,
    palmar: TemplateMatrix,
    template_count: usize,
}

impl GalleryIndex {
    pub fn new(dim: usize) -> Self {
        Self::with_settings(dim, IndexSettings::default())
    }

    pub fn with_settings(dim: usize, settings: IndexSettings) -> Self {
        Self {
            dim,
            settings,
            templates: HashMap::new(),
            dorsal: TemplateMatrix::new(settings, dim),
            palmar: TemplateMatrix::new(settings, dim),
            template_count: 0,
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn subject_count(&self) -> usize {
        self.templates.len()
    }

    pub fn template_count(&self) -> usize {
        self.template_count
    }

    /// Subjects that have at least one template of `aspect`.
    pub fn subjects_with(&self, aspect: Aspect) -> usize {
        self.matrix(aspect).subjects.len()
    }

    fn matrix(&self, aspect: Aspect) -> &TemplateMatrix {
        match aspect {
            Aspect::Dorsal => &self.dorsal,
            Aspect::Palmar => &self.palmar,
        }
    }

    /// Adds templates of one subject; a template id already present is ignored (enrolment
    /// is idempotent).
    pub fn insert(&mut self, subject: &str, new: impl IntoIterator<Item = IndexedTemplate>) {
        let list = self.templates.entry(subject.to_string()).or_default();
        for t in new {
            assert_eq!(t.embedding.len(), self.dim, "embedding dimension");
            if list.iter().any(|x| x.template_id == t.template_id) {
                continue;
            }
            list.push(TemplateRef {
                template_id: t.template_id,
            });
            self.template_count += 1;
            match t.aspect {
                Aspect::Dorsal => self.dorsal.add(subject, &t.embedding),
                Aspect::Palmar => self.palmar.add(subject, &t.embedding),
            }
        }
        if list.is_empty() {
            self.templates.remove(subject);
        }
    }

    /// Removes a subject; returns how many templates went.
    pub fn remove_subject(&mut self, subject: &str) -> usize {
        let Some(list) = self.templates.remove(subject) else {
            return 0;
        };
        self.dorsal.remove(subject);
        self.palmar.remove(subject);
        self.template_count -= list.len();
        list.len()
    }

    /// The `top_k` subjects by cosine similarity of their `aspect` template to `query`
    /// (unit length), best first; ties go to the smaller subject id so answers are stable.
    pub fn search(
        &self,
        query: &[f32],
        aspect: Aspect,
        top_k: usize,
        min_score: Option<f32>,
    ) -> Vec<Match> {
        self.search_batch(&[query], aspect, top_k, min_score)
            .pop()
            .unwrap_or_default()
    }

    /// [`Self::search`] for several queries in one pass over the rows.
    pub fn search_batch(
        &self,
        queries: &[&[f32]],
        aspect: Aspect,
        top_k: usize,
        min_score: Option<f32>,
    ) -> Vec<Vec<Match>> {
        let m = self.matrix(aspect);
        let floor = min_score.unwrap_or(f32::NEG_INFINITY);
        m.rows
            .scan(queries, top_k, floor, self.settings.search_threads)
            .into_iter()
            .map(|top| m.ranked(top, top_k))
            .collect()
    }

    /// The cosine similarity of `query` to one subject's `aspect` template.
    pub fn score(&self, subject: &str, query: &[f32], aspect: Aspect) -> Option<f32> {
        let m = self.matrix(aspect);
        let i = *m.slot.get(subject)?;
        Some(m.rows.score(i, query))
    }

    /// Whether the subject has at least one template of `aspect`.
    pub fn has(&self, subject: &str, aspect: Aspect) -> bool {
        self.matrix(aspect).slot.contains_key(subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let mut v = v.to_vec();
        handmatch_core::template::l2_normalize(&mut v);
        v
    }

    fn t(id: i64, aspect: Aspect, v: &[f32]) -> IndexedTemplate {
        IndexedTemplate {
            template_id: id,
            aspect,
            embedding: unit(v),
        }
    }

    #[test]
    fn ranks_subjects_by_their_mean_template_of_the_asked_aspect() {
        let mut idx = GalleryIndex::new(3);
        idx.insert(
            "a",
            [
                t(1, Aspect::Palmar, &[1., 0., 0.]),
                t(2, Aspect::Palmar, &[0., 1., 0.]),
            ],
        );
        idx.insert(
            "b",
            [
                t(3, Aspect::Palmar, &[0.9, 0.1, 0.]),
                t(4, Aspect::Dorsal, &[0., 0., 1.]),
            ],
        );
        idx.insert("c", [t(5, Aspect::Dorsal, &[1., 0., 0.])]);
        let q = unit(&[1., 0., 0.]);
        let ranked = idx.search(&q, Aspect::Palmar, 10, None);
        assert_eq!(
            ranked
                .iter()
                .map(|m| m.subject_id.as_str())
                .collect::<Vec<_>>(),
            vec!["b", "a"]
        );
        assert!((ranked[1].score - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert_eq!(idx.search(&q, Aspect::Dorsal, 1, None)[0].subject_id, "c");
        assert_eq!(idx.search(&q, Aspect::Palmar, 10, Some(0.9)).len(), 1);
        assert_eq!(
            (
                idx.subject_count(),
                idx.template_count(),
                idx.subjects_with(Aspect::Palmar)
            ),
            (3, 5, 2)
        );
    }

    #[test]
    fn idempotent_insert_removal_and_stable_ties() {
        let mut idx = GalleryIndex::new(2);
        for s in ["d", "c", "b", "a"] {
            idx.insert(s, [t(s.as_bytes()[0] as i64, Aspect::Palmar, &[1., 0.])]);
        }
        idx.insert("a", [t(b'a' as i64, Aspect::Palmar, &[0., 1.])]); // same id: ignored
        assert_eq!(idx.template_count(), 4);
        let q = unit(&[1., 0.]);
        let names = |idx: &GalleryIndex| {
            idx.search(&q, Aspect::Palmar, 3, None)
                .into_iter()
                .map(|m| m.subject_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&idx), vec!["a", "b", "c"]);
        assert_eq!(idx.remove_subject("b"), 1);
        assert_eq!(idx.remove_subject("b"), 0);
        assert_eq!(names(&idx), vec!["a", "c", "d"]);
        assert!(idx.score("b", &q, Aspect::Palmar).is_none());
        assert!((idx.score("d", &q, Aspect::Palmar).unwrap() - 1.0).abs() < 1e-6);
    }
}
