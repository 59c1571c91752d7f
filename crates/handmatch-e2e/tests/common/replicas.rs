//! Several servers on one database: starting replicas, what a replica's index shows (its
//! Identify answers, not the store's), and waiting for replicas to agree.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use handmatch_core::hand_image::Aspect;
use handmatch_proto::v1 as pb;
use handmatch_proto::v1::hand_match_client::HandMatchClient;
use handmatch_server::config::Args;
use handmatch_server::server::RunningServer;
use tonic::transport::Channel;
use tonic::Code;

pub struct Replica {
    pub server: RunningServer,
    pub client: HandMatchClient<Channel>,
}

/// A replica of the shared test model on `database_url`, with `tweak` applied to its flags.
pub async fn replica(database_url: &str, tweak: impl FnOnce(&mut Args)) -> Replica {
    let mut args = Args::for_model(super::model(0), database_url);
    tweak(&mut args);
    let server = super::start_with(args).await.unwrap();
    let client = super::client(&server).await;
    Replica { server, client }
}

pub async fn enroll(client: &mut HandMatchClient<Channel>, subject: &str, nth: usize) {
    try_enroll(client, subject, nth).await.unwrap();
}

pub async fn try_enroll(
    client: &mut HandMatchClient<Channel>,
    subject: &str,
    nth: usize,
) -> Result<(), tonic::Status> {
    let image = super::pb_image(super::hand_image(Aspect::Palmar, nth), pb::Aspect::Palmar);
    client
        .enroll(pb::EnrollRequest {
            subject_id: subject.into(),
            images: vec![image],
            ..Default::default()
        })
        .await
        .map(|_| ())
}

/// Deletes; a subject already gone is not an error here.
pub async fn delete(client: &mut HandMatchClient<Channel>, subject: &str) {
    let deleted = client
        .delete_subject(pb::DeleteSubjectRequest {
            subject_id: subject.into(),
            ..Default::default()
        })
        .await;
    match deleted {
        Ok(_) => {}
        Err(s) if s.code() == Code::NotFound => {}
        Err(s) => panic!("deleting {subject}: {s:?}"),
    }
}

/// Subject → score for one fixed query, as this replica's index ranks the whole gallery.
pub async fn view(client: &mut HandMatchClient<Channel>) -> BTreeMap<String, f32> {
    let request = pb::IdentifyRequest {
        images: vec![super::pb_image(
            super::hand_image(Aspect::Dorsal, 0),
            pb::Aspect::Dorsal,
        )],
        top_k: Some(100),
        ..Default::default()
    };
    match client.identify(request).await {
        Ok(answer) => super::ranking(answer.into_inner()).into_iter().collect(),
        Err(s) if s.code() == Code::FailedPrecondition => BTreeMap::new(),
        Err(s) => panic!("identify: {s:?}"),
    }
}

pub async fn info(client: &mut HandMatchClient<Channel>) -> pb::InfoResponse {
    client
        .get_info(pb::GetInfoRequest::default())
        .await
        .unwrap()
        .into_inner()
}

/// Waits until `holds` is true of this replica's view; returns how long that took, or
/// panics after `within` with the last view.
pub async fn eventually(
    client: &mut HandMatchClient<Channel>,
    within: Duration,
    what: &str,
    holds: impl Fn(&BTreeMap<String, f32>) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let seen = view(client).await;
        if holds(&seen) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{what}: not within {within:?}; the replica shows {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The newest change in the database's feed.
pub async fn feed_head(database_url: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(database_url).await.unwrap();
    sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(seq) FROM gallery_changes")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .unwrap_or(0)
}

/// Waits until every replica has applied the feed up to the database's newest change.
pub async fn settled(database_url: &str, replicas: &mut [&mut Replica], within: Duration) {
    let head = feed_head(database_url).await;
    let start = Instant::now();
    for r in replicas.iter_mut() {
        loop {
            let applied = info(&mut r.client).await.applied_change_seq;
            if applied >= head {
                break;
            }
            assert!(
                start.elapsed() < within,
                "a replica is at change {applied} of {head} after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
