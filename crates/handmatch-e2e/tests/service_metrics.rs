//! Prometheus metrics over HTTP: `/metrics` on --metrics-listen parses as the text format,
//! and its counters, histograms and gauges move with the calls the server answers.

mod common;

use std::collections::BTreeMap;

use common::{hand_image, pb_image, Backend};
use handmatch_core::hand_image::Aspect;
use handmatch_proto::v1 as pb;
use handmatch_server::config::Args;
use prometheus_parse::{Sample, Scrape, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

/// GET /metrics over a plain TCP connection; the body, parsed.
async fn scrape(addr: std::net::SocketAddr) -> Scrape {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    Scrape::parse(lines).unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{body}"))
}

/// The value of `name` with exactly these labels (0 when absent); a histogram's count.
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let wanted: BTreeMap<&str, &str> = labels.iter().copied().collect();
    s.samples
        .iter()
        .filter(|x: &&Sample| x.metric == name)
        .filter(|x| {
            let have: BTreeMap<&str, &str> = x
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            have == wanted
        })
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => panic!("{name} is a summary, not a histogram"),
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_with_requests() {
    let url = common::database(Backend::Sqlite).await;
    let mut args = Args::for_model(common::model(1), &url);
    args.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = common::start_with(args).await.unwrap();
    let at = server.metrics_addr.expect("metrics are served");
    let mut c = common::client(&server).await;

    let before = scrape(at).await;
    assert_eq!(value(&before, "handmatch_gallery_subjects", &[]), 0.0);
    c.enroll(pb::EnrollRequest {
        subject_id: "alice".into(),
        images: vec![pb_image(hand_image(Aspect::Palmar, 0), pb::Aspect::Palmar)],
        ..Default::default()
    })
    .await
    .unwrap();
    for _ in 0..3 {
        c.identify(pb::IdentifyRequest {
            images: vec![pb_image(hand_image(Aspect::Dorsal, 0), pb::Aspect::Dorsal)],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let missing = c
        .get_subject(pb::GetSubjectRequest {
            subject_id: "nobody".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let after = scrape(at).await;

    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let identify = [("method", "HandMatch/Identify")];
    assert_eq!(
        moved("handmatch_requests_total", &[identify[0], ("code", "Ok")]),
        3.0
    );
    assert_eq!(
        moved(
            "handmatch_requests_total",
            &[("method", "HandMatch/GetSubject"), ("code", "NotFound")]
        ),
        1.0
    );
    assert_eq!(moved("handmatch_request_duration_seconds", &identify), 3.0);
    // One enrolment and three searches embedded and decoded; three searched.
    assert_eq!(moved("handmatch_decode_seconds", &[]), 4.0);
    assert_eq!(moved("handmatch_embed_seconds", &[]), 4.0);
    assert_eq!(moved("handmatch_embedding_batch_images", &[]), 4.0);
    assert_eq!(moved("handmatch_search_seconds", &[]), 3.0);
    assert_eq!(value(&after, "handmatch_gallery_subjects", &[]), 1.0);
    assert_eq!(value(&after, "handmatch_gallery_templates", &[]), 1.0);
    assert!(value(&after, "handmatch_db_connections", &[]) >= 1.0);
    assert_eq!(value(&after, "handmatch_embedding_queue_depth", &[]), 0.0);
    server.shutdown().await.unwrap();
}
