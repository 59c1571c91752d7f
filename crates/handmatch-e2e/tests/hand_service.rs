//! The service with a hand-landmarks artefact, end to end over gRPC: synthetic hands (on
//! which the real MediaPipe model finds a hand) are enrolled and identified, the scores are
//! the offline evaluation's embeddings, and an image without a hand is refused with
//! INVALID_ARGUMENT "no hand found" while nothing is written and the server keeps serving.

mod common;

use common::{client, database, hand_model, hands, start, Backend};
use handmatch_core::embed::RuntimeOptions;
use handmatch_core::hand_image::Aspect;
use handmatch_core::template::dot;
use handmatch_eval::client::pb_image;
use handmatch_proto::v1 as pb;
use handmatch_trainer::evaluate::embed_images;
use image::{Rgb, RgbImage};
use tonic::Code;

fn png(img: &RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A light background with a dark disc: something to crop, but no hand.
fn no_hand() -> Vec<u8> {
    png(&RgbImage::from_fn(200, 150, |x, y| {
        let (dx, dy) = (x as i32 - 100, y as i32 - 75);
        if dx * dx + dy * dy < 40 * 40 {
            Rgb([90, 60, 50])
        } else {
            Rgb([250, 250, 250])
        }
    }))
}

// Long on purpose: one scenario, read top to bottom; each step depends on the state the
// previous ones left, so splitting it would hide that state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifies_aligned_hands_and_refuses_images_without_one() {
    let model = hand_model();
    let data = hands();
    let subjects: Vec<String> = data
        .subjects()
        .keys()
        .take(4)
        .map(|s| s.to_string())
        .collect();
    let pick = |s: &str, aspect: Aspect| {
        data.images
            .iter()
            .find(|i| i.subject == s && i.aspect == aspect)
            .unwrap()
    };
    let gallery: Vec<_> = subjects.iter().map(|s| pick(s, Aspect::Palmar)).collect();
    let queries: Vec<_> = subjects.iter().map(|s| pick(s, Aspect::Dorsal)).collect();
    // What offline evaluation computes for the same images.
    let all: Vec<_> = gallery.iter().chain(&queries).copied().collect();
    let offline = embed_images(&model, &all, &RuntimeOptions::default(), 8, false).unwrap();
    assert!(
        offline.no_hand.is_empty(),
        "the hand model found no hand in a synthetic image"
    );
    let (offline_gallery, offline_queries) = offline.embeddings.split_at(gallery.len());

    let db = database(Backend::Sqlite).await;
    let server = start(&model, &db).await;
    let mut c = client(&server).await;
    let info = c
        .get_info(pb::GetInfoRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        info.backbone.starts_with("hand-landmarks("),
        "{}",
        info.backbone
    );
    for (s, g) in subjects.iter().zip(&gallery) {
        c.enroll(pb::EnrollRequest {
            subject_id: s.clone(),
            images: vec![pb_image(g).unwrap()],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    for (q, expected) in queries.iter().zip(offline_queries) {
        let answer = c
            .identify(pb::IdentifyRequest {
                images: vec![pb_image(q).unwrap()],
                top_k: Some(4),
                gallery_aspect: 0,
                min_score: None,
                operating_point: 0,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.candidates.len(), 4);
        for cand in &answer.candidates {
            let g = subjects.iter().position(|s| *s == cand.subject_id).unwrap();
            let want = dot(expected, &offline_gallery[g]);
            assert!(
                (cand.score - want).abs() <= 1e-5,
                "server {} vs offline {want}",
                cand.score
            );
        }
    }

    // No hand: refused, named, nothing written, still serving.
    let status = c
        .identify(pb::IdentifyRequest {
            images: vec![
                pb_image(queries[0]).unwrap(),
                pb::Image {
                    data: no_hand(),
                    aspect: pb::Aspect::Dorsal as i32,
                    side: 0,
                },
            ],
            top_k: Some(3),
            gallery_aspect: 0,
            min_score: None,
            operating_point: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("images[1]") && status.message().contains("no hand found"),
        "{}",
        status.message()
    );
    let status = c
        .enroll(pb::EnrollRequest {
            subject_id: "nobody".into(),
            images: vec![pb::Image {
                data: no_hand(),
                aspect: pb::Aspect::Palmar as i32,
                side: 0,
            }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("no hand found"),
        "{}",
        status.message()
    );
    let info = c
        .get_info(pb::GetInfoRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.gallery_subjects, subjects.len() as u64);
    let again = c
        .identify(pb::IdentifyRequest {
            images: vec![pb_image(queries[1]).unwrap()],
            top_k: Some(1),
            gallery_aspect: 0,
            min_score: None,
            operating_point: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.candidates.len(), 1);
    server.shutdown().await.unwrap();
}
