//! The server's index ranks exactly as the offline metrics do.

use std::collections::HashSet;

use handmatch_core::hand_image::Aspect;
use handmatch_core::metrics::protocols::image_to_template;
use handmatch_core::metrics::{rank_query, Accessories, EmbeddedImage};
use handmatch_core::template::l2_normalize;
use handmatch_server::index::{GalleryIndex, IndexedTemplate};

/// Deterministic unit vectors on a coarse grid, so that near-equal scores are common.
fn embeddings(seed: u64, count: usize, dim: usize) -> Vec<Vec<f32>> {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % 3) as f32 - 1.0
    };
    (0..count)
        .map(|_| {
            let mut v: Vec<f32> = (0..dim).map(|_| next()).collect();
            if v.iter().all(|x| *x == 0.0) {
                v[0] = 1.0;
            }
            l2_normalize(&mut v);
            v
        })
        .collect()
}

fn dataset() -> Vec<EmbeddedImage> {
    let vectors = embeddings(7, 200, 4);
    let mut vectors = vectors.into_iter();
    let mut images = Vec::new();
    for s in 0..25 {
        for (aspect, n) in [(Aspect::Palmar, 3), (Aspect::Dorsal, 3)] {
            for i in 0..n {
                images.push(EmbeddedImage {
                    subject: format!("s{s:02}"),
                    aspect,
                    accessories: i == 2,
                    embedding: vectors.next().unwrap(),
                });
            }
        }
    }
    // s01's palmar images copy s00's, so their templates are bitwise equal and every query
    // scores them the same: the tie-break decides.
    let s00: Vec<Vec<f32>> = images
        .iter()
        .filter(|i| i.subject == "s00" && i.aspect == Aspect::Palmar)
        .map(|i| i.embedding.clone())
        .collect();
    images
        .iter_mut()
        .filter(|i| i.subject == "s01" && i.aspect == Aspect::Palmar)
        .zip(s00)
        .for_each(|(i, e)| i.embedding = e);
    images
}

#[test]
fn image_to_template_ranks_match_the_server_index() {
    let images = dataset();
    let dim = images[0].embedding.len();
    let mut index = GalleryIndex::new(dim);
    for (id, image) in images.iter().enumerate() {
        if image.aspect == Aspect::Palmar {
            index.insert(
                &image.subject,
                [IndexedTemplate {
                    template_id: id as i64,
                    aspect: Aspect::Palmar,
                    embedding: image.embedding.clone(),
                }],
            );
        }
    }
    let subjects: Vec<String> = {
        let set: HashSet<_> = images.iter().map(|i| i.subject.clone()).collect();
        let mut v: Vec<_> = set.into_iter().collect();
        v.sort();
        v
    };

    let mut server_ranks = Vec::new();
    for image in images.iter().filter(|i| i.aspect == Aspect::Dorsal) {
        let ranked = index.search(&image.embedding, Aspect::Palmar, subjects.len(), None);
        let rank = ranked
            .iter()
            .position(|m| m.subject_id == image.subject)
            .unwrap()
            + 1;
        server_ranks.push(rank);

        // The same ranking through the metrics API, with the gallery in another order.
        let mut gallery: Vec<(String, Vec<f32>)> = subjects
            .iter()
            .rev()
            .map(|s| {
                let palmar = images
                    .iter()
                    .filter(|i| &i.subject == s && i.aspect == Aspect::Palmar)
                    .map(|i| i.embedding.as_slice());
                (
                    s.clone(),
                    handmatch_core::template::mean_template(palmar, dim).unwrap(),
                )
            })
            .collect();
        gallery.rotate_left(7);
        let (labels, vectors): (Vec<_>, Vec<_>) = gallery.into_iter().unzip();
        let ours = rank_query(&image.embedding, &labels, &vectors, &image.subject).unwrap();
        assert_eq!(ours.rank, rank, "query of {}", image.subject);
    }

    let metrics = image_to_template(&images, Accessories::Included).unwrap();
    assert_eq!(metrics.queries, server_ranks.len());
    assert_eq!(metrics.gallery_size, subjects.len());
    let mean_rank = server_ranks.iter().sum::<usize>() as f64 / server_ranks.len() as f64;
    assert!((metrics.mean_rank - mean_rank).abs() < 1e-12);
    for r in &metrics.recall {
        let within = server_ranks.iter().filter(|&&x| x <= r.k).count();
        assert_eq!(r.value, within as f64 / server_ranks.len() as f64);
    }
    assert!(metrics.cmc.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(*metrics.cmc.last().unwrap(), 1.0);
}
