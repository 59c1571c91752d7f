//! `GalleryIndexes`: one `GalleryIndex` per gallery, so a search reads only the rows of the
//! gallery it names and can never return another gallery's subject.

use std::collections::HashMap;

use super::gallery_index::{GalleryIndex, IndexSettings, IndexedTemplate};

pub struct GalleryIndexes {
    dim: usize,
    settings: IndexSettings,
    galleries: HashMap<String, GalleryIndex>,
}

impl GalleryIndexes {
    pub fn new(dim: usize) -> Self {
        Self::with_settings(dim, IndexSettings::default())
    }

    pub fn with_settings(dim: usize, settings: IndexSettings) -> Self {
        Self {
            dim,
            settings,
            galleries: HashMap::new(),
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The gallery's index; `None` for a gallery without subjects.
    pub fn gallery(&self, name: &str) -> Option<&GalleryIndex> {
        self.galleries.get(name)
    }

    pub fn insert(
        &mut self,
        gallery: &str,
        subject: &str,
        new: impl IntoIterator<Item = IndexedTemplate>,
    ) {
        let (dim, settings) = (self.dim, self.settings);
        self.galleries
            .entry(gallery.to_string())
            .or_insert_with(|| GalleryIndex::with_settings(dim, settings))
            .insert(subject, new);
    }

    /// Removes a subject; returns how many templates went. A gallery left empty is dropped.
    pub fn remove_subject(&mut self, gallery: &str, subject: &str) -> usize {
        let Some(index) = self.galleries.get_mut(gallery) else {
            return 0;
        };
        let removed = index.remove_subject(subject);
        if index.subject_count() == 0 {
            self.galleries.remove(gallery);
        }
        removed
    }

    /// Makes the subject's templates exactly `templates` (none: the subject goes).
    pub fn replace_subject(
        &mut self,
        gallery: &str,
        subject: &str,
        templates: Vec<IndexedTemplate>,
    ) {
        self.remove_subject(gallery, subject);
        if !templates.is_empty() {
            self.insert(gallery, subject, templates);
        }
    }

    /// (subjects, templates) over every gallery.
    pub fn totals(&self) -> (usize, usize) {
        self.galleries.values().fold((0, 0), |(s, t), g| {
            (s + g.subject_count(), t + g.template_count())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use handmatch_core::hand_image::Aspect;

    fn palmar(id: i64, v: [f32; 2]) -> IndexedTemplate {
        IndexedTemplate {
            template_id: id,
            aspect: Aspect::Palmar,
            embedding: v.to_vec(),
        }
    }

    #[test]
    fn the_same_subject_id_in_two_galleries_is_two_subjects() {
        let mut idx = GalleryIndexes::new(2);
        idx.insert("a", "alice", [palmar(1, [1., 0.])]);
        idx.insert("b", "alice", [palmar(2, [0., 1.])]);
        idx.insert("b", "bob", [palmar(3, [1., 0.])]);
        let best = |idx: &GalleryIndexes, g: &str| {
            idx.gallery(g)
                .unwrap()
                .search(&[1., 0.], Aspect::Palmar, 1, None)[0]
                .subject_id
                .clone()
        };
        assert_eq!(
            (best(&idx, "a"), best(&idx, "b")),
            ("alice".into(), "bob".into())
        );
        assert_eq!(idx.totals(), (3, 3));
        assert_eq!(idx.remove_subject("a", "alice"), 1);
        assert!(idx.gallery("a").is_none());
        assert_eq!(idx.gallery("b").unwrap().subject_count(), 2);
        assert_eq!(idx.remove_subject("nowhere", "alice"), 0);
        idx.replace_subject("b", "bob", vec![palmar(4, [0., 1.]), palmar(5, [0., 1.])]);
        assert_eq!(idx.gallery("b").unwrap().template_count(), 3);
        assert_eq!(best(&idx, "b"), "alice", "bob's old template is gone");
        idx.replace_subject("b", "bob", Vec::new());
        assert_eq!(idx.totals(), (1, 1));
    }
}
