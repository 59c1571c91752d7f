//! The template store misbehaving, over real gRPC and a real PostgreSQL: a commit that
//! outlasts the client's deadline leaves the store and the index agreeing (a deleted subject
//! is never matched again once its Delete has returned or failed); a database that is down
//! at start is waited for; a database lost while serving turns writes UNAVAILABLE quickly,
//! reads keep answering, and the store's health says so.

mod common;

use std::time::{Duration, Instant};

use common::health::{status, wait_for};
use common::outage::Outage;
use common::{hand_image, pb_image, Backend};
use handmatch_core::hand_image::Aspect;
use handmatch_proto::v1 as pb;
use handmatch_proto::v1::hand_match_client::HandMatchClient;
use handmatch_server::config::Args;
use handmatch_server::health::STORE_SERVICE;
use sqlx::Connection;
use tonic::transport::Channel;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

fn enroll(subject: &str, nth: usize) -> pb::EnrollRequest {
    pb::EnrollRequest {
        subject_id: subject.into(),
        images: vec![pb_image(
            hand_image(Aspect::Palmar, nth),
            pb::Aspect::Palmar,
        )],
        ..Default::default()
    }
}

fn identify() -> pb::IdentifyRequest {
    pb::IdentifyRequest {
        images: vec![pb_image(hand_image(Aspect::Dorsal, 0), pb::Aspect::Dorsal)],
        top_k: Some(100),
        gallery_aspect: 0,
        min_score: None,
        operating_point: 0,
        ..Default::default()
    }
}

async fn candidates(client: &mut HandMatchClient<Channel>) -> Vec<String> {
    client
        .identify(identify())
        .await
        .unwrap()
        .into_inner()
        .candidates
        .into_iter()
        .map(|c| c.subject_id)
        .collect()
}

fn with_deadline<T>(message: T, deadline: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(deadline);
    request
}

/// Every commit that inserts or deletes a subject sleeps `seconds` first.
async fn slow_commits(database_url: &str, seconds: f64) {
    let mut conn = sqlx::PgConnection::connect(database_url).await.unwrap();
    for sql in [
        format!(
            "CREATE FUNCTION hm_slow_commit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$"
        ),
        "CREATE CONSTRAINT TRIGGER hm_slow_commit AFTER INSERT OR DELETE ON subjects \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hm_slow_commit()"
            .to_string(),
    ] {
        sqlx::query(&sql).execute(&mut conn).await.unwrap();
    }
}

fn gave_up(status: &tonic::Status) -> bool {
    matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled)
}

// Long on purpose: one scenario whose steps depend on the state the previous ones left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_whose_commit_outlasts_the_deadline_leave_store_and_index_agreeing() {
    let db = common::database(Backend::Postgres).await;
    let server = common::start(&common::model(0), &db).await;
    let mut client = common::client(&server).await;
    for (i, s) in ["alice", "bob"].into_iter().enumerate() {
        client.enroll(enroll(s, i)).await.unwrap();
    }
    slow_commits(&db, 3.0).await;

    let status = client
        .delete_subject(with_deadline(
            pb::DeleteSubjectRequest {
                subject_id: "alice".into(),
                ..Default::default()
            },
            Duration::from_secs(1),
        ))
        .await
        .expect_err("the commit takes 3 s, the deadline is 1 s");
    assert!(gave_up(&status), "{status:?}");
    // From the moment the Delete failed, through its commit and after it: never matched.
    let until = Instant::now() + Duration::from_secs(4);
    let mut searches = 0;
    while Instant::now() < until {
        let found = candidates(&mut client).await;
        assert!(
            !found.contains(&"alice".to_string()),
            "search {searches} after the failed Delete returned alice: {found:?}"
        );
        assert!(found.contains(&"bob".to_string()));
        searches += 1;
    }
    assert!(searches > 3, "{searches} searches");
    let gone = client
        .get_subject(pb::GetSubjectRequest {
            subject_id: "alice".into(),
            ..Default::default()
        })
        .await
        .expect_err("the commit completed on its own");
    assert_eq!(gone.code(), Code::NotFound);
    let again = client
        .delete_subject(pb::DeleteSubjectRequest {
            subject_id: "alice".into(),
            ..Default::default()
        })
        .await
        .expect_err("nothing left to delete");
    assert_eq!(again.code(), Code::NotFound);
    assert!(!candidates(&mut client).await.contains(&"alice".to_string()));

    // An enrolment whose commit outlasts its deadline: durable, and searchable too.
    let status = client
        .enroll(with_deadline(enroll("carol", 2), Duration::from_secs(1)))
        .await
        .expect_err("the commit takes 3 s, the deadline is 1 s");
    assert!(gave_up(&status), "{status:?}");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let carol = client
        .get_subject(pb::GetSubjectRequest {
            subject_id: "carol".into(),
            ..Default::default()
        })
        .await
        .expect("the enrolment committed after its caller gave up")
        .into_inner();
    assert_eq!(carol.templates.len(), 1);
    assert!(
        candidates(&mut client).await.contains(&"carol".to_string()),
        "durable and searchable"
    );
    server.shutdown().await.unwrap();
}

// Long on purpose: one outage, read top to bottom.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_down_at_start_is_waited_for_and_one_lost_while_serving_is_reported() {
    let real = common::database(Backend::Postgres).await;
    let mut outage = Outage::new().await;
    let url = outage.url_of(&real);
    let server = handmatch_server::server::start(Args::for_model(common::model(0), url))
        .await
        .unwrap();
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let api = "handmatch.v1.HandMatch";
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        status(channel.clone(), api).await,
        ServingStatus::NotServing as i32,
        "no database, no service"
    );
    let mut client = HandMatchClient::new(channel.clone());
    let early = client.enroll(enroll("alice", 0)).await.unwrap_err();
    assert_eq!(early.code(), Code::Unavailable, "{early:?}");

    outage.up().await;
    wait_for(
        &channel,
        api,
        ServingStatus::Serving,
        Duration::from_secs(20),
    )
    .await;
    wait_for(
        &channel,
        STORE_SERVICE,
        ServingStatus::Serving,
        Duration::from_secs(5),
    )
    .await;
    client.enroll(enroll("alice", 0)).await.unwrap();

    outage.down();
    wait_for(
        &channel,
        STORE_SERVICE,
        ServingStatus::NotServing,
        Duration::from_secs(10),
    )
    .await;
    let start = Instant::now();
    let lost = client.enroll(enroll("bob", 1)).await.unwrap_err();
    assert_eq!(lost.code(), Code::Unavailable, "{lost:?}");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "the write failed after {:?}",
        start.elapsed()
    );
    assert_eq!(
        candidates(&mut client).await,
        ["alice"],
        "searches answer from the index"
    );
    assert_eq!(
        status(channel.clone(), api).await,
        ServingStatus::Serving as i32
    );

    outage.up().await;
    wait_for(
        &channel,
        STORE_SERVICE,
        ServingStatus::Serving,
        Duration::from_secs(10),
    )
    .await;
    client.enroll(enroll("bob", 1)).await.unwrap();
    server.shutdown().await.unwrap();
}
