//! The bad-input table: each case gets the right gRPC code and a message naming the
//! problem, the store is unchanged where the request was refused, and the server still
//! answers its health check afterwards.

mod common;

use std::io::Cursor;

use common::{assert_refused as expect, pb_image as image, Backend};
use handmatch_core::hand_image::Aspect;
use handmatch_proto::v1 as pb;
use handmatch_proto::v1::hand_match_client::HandMatchClient;
use handmatch_server::config::Args;
use image::{DynamicImage, ImageFormat, RgbImage};
use tonic::transport::Channel;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

fn hand_jpeg() -> Vec<u8> {
    let img = common::hands()
        .images
        .iter()
        .find(|i| i.aspect == Aspect::Palmar)
        .unwrap();
    std::fs::read(&img.path).unwrap()
}

/// A PNG whose header declares 100000 x 100000 pixels, with a valid CRC and no pixel data.
fn png_bomb() -> Vec<u8> {
    let mut bytes = encode(
        &DynamicImage::ImageLuma8(image::GrayImage::new(2, 2)),
        ImageFormat::Png,
    );
    let ihdr = bytes.windows(4).position(|w| w == b"IHDR").unwrap();
    bytes[ihdr + 4..ihdr + 8].copy_from_slice(&100_000u32.to_be_bytes());
    bytes[ihdr + 8..ihdr + 12].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32fast::hash(&bytes[ihdr..ihdr + 17]);
    bytes[ihdr + 17..ihdr + 21].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn cmyk_jpeg() -> Vec<u8> {
    let (w, h) = (64u16, 48u16);
    let data: Vec<u8> = (0..w as usize * h as usize)
        .flat_map(|i| [(i % 200) as u8, 40, 90, 10])
        .collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 90)
        .encode(&data, w, h, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    out
}

fn enroll(subject: &str, images: Vec<pb::Image>) -> pb::EnrollRequest {
    pb::EnrollRequest {
        subject_id: subject.into(),
        images,
        ..Default::default()
    }
}

fn identify(images: Vec<pb::Image>, top_k: Option<u32>) -> pb::IdentifyRequest {
    pb::IdentifyRequest {
        images,
        top_k,
        gallery_aspect: 0,
        min_score: None,
        operating_point: 0,
        ..Default::default()
    }
}

/// Gallery counts and every template of every subject: what "the store is unchanged" means
/// from the outside.
async fn snapshot(client: &mut HandMatchClient<Channel>) -> (u64, u64, Vec<pb::Subject>) {
    let info = client
        .get_info(pb::GetInfoRequest::default())
        .await
        .unwrap()
        .into_inner();
    let page = client
        .list_subjects(pb::ListSubjectsRequest {
            page_size: Some(1000),
            page_token: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut subjects = Vec::new();
    for s in page.subjects {
        subjects.push(
            client
                .get_subject(pb::GetSubjectRequest {
                    subject_id: s.subject_id,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner(),
        );
    }
    (info.gallery_subjects, info.gallery_templates, subjects)
}

async fn assert_serving(channel: Channel) {
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "handmatch.v1.HandMatch".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
}

// Long on purpose: a table of bad requests against one server, each followed by the check
// that the gallery did not change; one server keeps the test fast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_refused_clearly_and_changes_nothing() {
    let mut args = Args::for_model(common::model(0), common::database(Backend::Sqlite).await);
    args.max_message_bytes = 2 << 20;
    args.max_images_per_request = 4;
    let server = common::start_with(args).await.unwrap();
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HandMatchClient::new(channel.clone()).max_encoding_message_size(64 << 20);

    // Identify on an empty gallery.
    expect(
        client
            .identify(identify(vec![image(hand_jpeg(), pb::Aspect::Dorsal)], None))
            .await,
        Code::FailedPrecondition,
        &["no palmar templates"],
    );
    client
        .enroll(enroll(
            "alice",
            vec![image(hand_jpeg(), pb::Aspect::Palmar)],
        ))
        .await
        .unwrap();
    let before = snapshot(&mut client).await;
    assert_eq!((before.0, before.1), (1, 1));

    let palmar = pb::Aspect::Palmar;
    let cases: Vec<(&str, pb::EnrollRequest, Code, Vec<&str>)> = vec![
        (
            "empty bytes",
            enroll("bob", vec![image(vec![], palmar)]),
            Code::InvalidArgument,
            vec!["images[0]", "empty"],
        ),
        (
            "truncated JPEG",
            enroll("bob", vec![image(hand_jpeg()[..600].to_vec(), palmar)]),
            Code::InvalidArgument,
            vec!["images[0]", "could not be decoded"],
        ),
        (
            "corrupt JPEG",
            enroll(
                "bob",
                vec![image(
                    {
                        let mut j = hand_jpeg();
                        let n = j.len();
                        j[200..n - 2].iter_mut().for_each(|b| *b = 0xFF);
                        j
                    },
                    palmar,
                )],
            ),
            Code::InvalidArgument,
            vec!["images[0]"],
        ),
        (
            "text file",
            enroll("bob", vec![image(b"name,age\nbob,42\n".to_vec(), palmar)]),
            Code::InvalidArgument,
            vec!["not a JPEG, PNG or WebP"],
        ),
        (
            "pixel bomb",
            enroll("bob", vec![image(png_bomb(), palmar)]),
            Code::InvalidArgument,
            vec!["100000x100000", "over the limit"],
        ),
        (
            "1x1 image",
            enroll(
                "bob",
                vec![image(
                    encode(
                        &DynamicImage::ImageRgb8(RgbImage::new(1, 1)),
                        ImageFormat::Png,
                    ),
                    palmar,
                )],
            ),
            Code::InvalidArgument,
            vec!["1x1", "minimum side"],
        ),
        (
            "second image bad",
            enroll(
                "bob",
                vec![image(hand_jpeg(), palmar), image(vec![1, 2, 3], palmar)],
            ),
            Code::InvalidArgument,
            vec!["images[1]"],
        ),
        (
            "empty subject_id",
            enroll("", vec![image(hand_jpeg(), palmar)]),
            Code::InvalidArgument,
            vec!["subject_id is empty"],
        ),
        (
            "10,000-character subject_id",
            enroll(&"x".repeat(10_000), vec![image(hand_jpeg(), palmar)]),
            Code::InvalidArgument,
            vec!["subject_id", "10000 characters", "128"],
        ),
        (
            "unknown aspect",
            enroll(
                "bob",
                vec![pb::Image {
                    data: hand_jpeg(),
                    aspect: 7,
                    side: 0,
                }],
            ),
            Code::InvalidArgument,
            vec!["images[0].aspect", "unknown value 7"],
        ),
        (
            "unknown side",
            enroll(
                "bob",
                vec![pb::Image {
                    data: hand_jpeg(),
                    aspect: 2,
                    side: 9,
                }],
            ),
            Code::InvalidArgument,
            vec!["images[0].side", "unknown value 9"],
        ),
        (
            "no aspect",
            enroll(
                "bob",
                vec![pb::Image {
                    data: hand_jpeg(),
                    aspect: 0,
                    side: 0,
                }],
            ),
            Code::InvalidArgument,
            vec!["images[0].aspect is required"],
        ),
        (
            "no images",
            enroll("bob", vec![]),
            Code::InvalidArgument,
            vec!["at least one image"],
        ),
        (
            "too many images",
            enroll("bob", vec![image(hand_jpeg(), palmar); 5]),
            Code::InvalidArgument,
            vec!["5 images", "at most 4"],
        ),
        (
            "message over the size limit",
            enroll("bob", vec![image(vec![0xAB; 3 << 20], palmar)]),
            Code::ResourceExhausted,
            vec!["limit"],
        ),
    ];
    for (name, request, code, words) in cases {
        expect(client.enroll(request).await, code, &words);
        assert_eq!(
            snapshot(&mut client).await,
            before,
            "{name} changed the store"
        );
        assert_serving(channel.clone()).await;
    }

    let query = || vec![image(hand_jpeg(), pb::Aspect::Dorsal)];
    expect(
        client.identify(identify(query(), Some(0))).await,
        Code::InvalidArgument,
        &["top_k is 0"],
    );
    expect(
        client.identify(identify(query(), Some(1000))).await,
        Code::InvalidArgument,
        &["top_k is 1000", "100"],
    );
    let mut bad_gallery = identify(query(), None);
    bad_gallery.gallery_aspect = 42;
    expect(
        client.identify(bad_gallery).await,
        Code::InvalidArgument,
        &["gallery_aspect", "42"],
    );
    expect(
        client
            .delete_subject(pb::DeleteSubjectRequest {
                subject_id: "nobody".into(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
        &["nobody"],
    );
    expect(
        client
            .verify(pb::VerifyRequest {
                subject_id: "nobody".into(),
                images: query(),
                gallery_aspect: 0,
                threshold: None,
                ..Default::default()
            })
            .await,
        Code::NotFound,
        &["nobody"],
    );
    expect(
        client
            .list_subjects(pb::ListSubjectsRequest {
                page_size: Some(0),
                page_token: String::new(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        &["page_size"],
    );
    expect(
        client
            .list_subjects(pb::ListSubjectsRequest {
                page_size: None,
                page_token: "zz".into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        &["page_token"],
    );
    assert_eq!(snapshot(&mut client).await, before);
    assert_serving(channel.clone()).await;

    // The same image enrolled twice: accepted, nothing new stored.
    let again = client
        .enroll(enroll("alice", vec![image(hand_jpeg(), palmar)]))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.templates[0].created);
    // Only the subject's last enrolment moves (retention counts from it).
    let mut after = snapshot(&mut client).await;
    assert!(after.2[0].last_enrolled_at_ms >= before.2[0].last_enrolled_at_ms);
    after.2[0].last_enrolled_at_ms = before.2[0].last_enrolled_at_ms;
    assert_eq!(after, before);

    // Greyscale, CMYK and 16-bit images are converted and answered.
    let grey = encode(
        &DynamicImage::ImageRgb8(image::load_from_memory(&hand_jpeg()).unwrap().to_rgb8())
            .grayscale(),
        ImageFormat::Png,
    );
    let deep = encode(
        &DynamicImage::ImageRgb16(image::load_from_memory(&hand_jpeg()).unwrap().to_rgb16()),
        ImageFormat::Png,
    );
    for (name, data) in [("greyscale", grey), ("CMYK", cmyk_jpeg()), ("16-bit", deep)] {
        let r = client
            .identify(identify(vec![image(data, pb::Aspect::Dorsal)], Some(1)))
            .await;
        assert!(r.is_ok(), "{name}: {r:?}");
        assert_eq!(r.unwrap().into_inner().candidates[0].subject_id, "alice");
    }
    assert_serving(channel).await;
    server.shutdown().await.unwrap();
}
