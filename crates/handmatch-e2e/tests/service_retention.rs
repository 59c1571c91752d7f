//! Consent and retention over real gRPC, on SQLite and Postgres: with --require-consent an
//! enrolment without a consent reference is refused; GetSubject shows the consent and when
//! the subject expires; the retention task purges exactly the subjects last enrolled before
//! the retention period (from the index too), and audits each purge.

mod common;

use std::time::{Duration, Instant};

use common::{hand_image, pb_image, Backend};
use handmatch_core::hand_image::Aspect;
use handmatch_proto::v1 as pb;
use handmatch_proto::v1::hand_match_client::HandMatchClient;
use handmatch_server::config::Args;
use handmatch_server::store::{AuditQuery, TemplateStore};
use tonic::transport::Channel;
use tonic::Code;

const DAY_MS: i64 = 86_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_subjects_are_purged_and_audited_on_sqlite() {
    expired_subjects_are_purged_and_audited(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_subjects_are_purged_and_audited_on_postgres() {
    expired_subjects_are_purged_and_audited(Backend::Postgres).await
}

fn enrolment(subject: &str, nth: usize, consent: &str) -> pb::EnrollRequest {
    pb::EnrollRequest {
        subject_id: subject.into(),
        images: vec![pb_image(
            hand_image(Aspect::Palmar, nth),
            pb::Aspect::Palmar,
        )],
        consent_reference: consent.into(),
        ..Default::default()
    }
}

async fn subject(c: &mut HandMatchClient<Channel>, id: &str) -> Result<pb::Subject, tonic::Status> {
    c.get_subject(pb::GetSubjectRequest {
        subject_id: id.into(),
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Moves the subject's last enrolment `days` into the past, as the database would hold it
/// had it been enrolled then.
async fn backdate(url: &str, subject: &str, days: i64) {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query("UPDATE subjects SET last_enrolled_at_ms = $1 WHERE subject_id = $2")
        .bind(now_ms() - days * DAY_MS)
        .bind(subject)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

// Long on purpose: one server's retention, from enrolment to purge and its trail.
async fn expired_subjects_are_purged_and_audited(backend: Backend) {
    let url = common::database(backend).await;
    let mut args = Args::for_model(common::model(1), &url);
    args.protection.require_consent = true;
    args.protection.retention_days = 30;
    args.protection.retention_check_seconds = 1;
    let server = common::start_with(args).await.unwrap();
    let mut c = common::client(&server).await;

    let refused = c.enroll(enrolment("nobody", 0, "")).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("consent_reference"),
        "{refused:?}"
    );
    let too_long = c
        .enroll(enrolment("nobody", 0, &"x".repeat(257)))
        .await
        .unwrap_err();
    assert!(too_long.message().contains("256"), "{too_long:?}");

    for (i, s) in ["old-1", "old-2", "fresh", "renewed"].iter().enumerate() {
        c.enroll(enrolment(s, i, &format!("form-{i}")))
            .await
            .unwrap();
    }
    let before = now_ms();
    let fresh = subject(&mut c, "fresh").await.unwrap();
    assert_eq!(fresh.consent_reference, "form-2");
    assert!((before - 60_000..=before).contains(&fresh.last_enrolled_at_ms));
    assert_eq!(fresh.expires_at_ms, fresh.last_enrolled_at_ms + 30 * DAY_MS);

    // Two subjects past the period, one just inside it, one enrolled again with a new
    // consent. (A subject enrolled again while the task purges it is kept: the store
    // rechecks the age in the deleting transaction, tests/data_protection.rs.)
    c.enroll(enrolment("renewed", 4, "form-renewed"))
        .await
        .unwrap();
    backdate(&url, "old-1", 31).await;
    backdate(&url, "old-2", 400).await;
    backdate(&url, "fresh", 29).await;

    let until = Instant::now() + Duration::from_secs(10);
    while subject(&mut c, "old-1").await.is_ok() || subject(&mut c, "old-2").await.is_ok() {
        assert!(
            Instant::now() < until,
            "expired subjects not purged within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for gone in ["old-1", "old-2"] {
        assert_eq!(
            subject(&mut c, gone).await.unwrap_err().code(),
            Code::NotFound
        );
    }
    assert_eq!(
        subject(&mut c, "fresh").await.unwrap().consent_reference,
        "form-2"
    );
    let renewed = subject(&mut c, "renewed").await.unwrap();
    assert_eq!(renewed.consent_reference, "form-renewed");
    assert_eq!(renewed.templates.len(), 2);
    let info = c
        .get_info(pb::GetInfoRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        info.gallery_subjects, 2,
        "purged subjects left the index too"
    );

    let store = TemplateStore::connect(&url, 1).await.unwrap();
    let query = AuditQuery {
        limit: 1000,
        ..AuditQuery::default()
    };
    let mut purges: Vec<(String, String, i64)> = store
        .audit_events(&query)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event.rpc == "RetentionPurge")
        .map(|r| {
            (
                r.event.actor,
                r.event.subject_id.unwrap(),
                r.event.templates,
            )
        })
        .collect();
    purges.sort();
    let expected = [("retention", "old-1", 1), ("retention", "old-2", 1)]
        .map(|(a, s, n)| (a.to_string(), s.to_string(), n));
    assert_eq!(purges, expected);
    store.close().await;
    server.shutdown().await.unwrap();
}

/// When VACUUM last ran on `templates` (None: never).
async fn last_vacuum(url: &str) -> Option<String> {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let at: Option<String> = sqlx::query_scalar(
        "SELECT CAST(last_vacuum AS TEXT) FROM pg_stat_user_tables WHERE relname = 'templates'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_is_vacuumed_soon_after_a_deletion_when_asked() {
    let url = common::database(Backend::Postgres).await;
    let mut args = Args::for_model(common::model(1), &url);
    args.protection.vacuum_after_delete = true;
    let server = common::start_with(args).await.unwrap();
    let mut c = common::client(&server).await;
    c.enroll(enrolment("alice", 0, "")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(last_vacuum(&url).await, None, "no deletion, no VACUUM");
    c.delete_subject(pb::DeleteSubjectRequest {
        subject_id: "alice".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let until = Instant::now() + Duration::from_secs(15);
    while last_vacuum(&url).await.is_none() {
        assert!(
            Instant::now() < until,
            "no VACUUM within 15 s of the deletion"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.shutdown().await.unwrap();
}
