//! The audit trail and request ids over real gRPC, on SQLite and Postgres: every mutating
//! call (Enroll, each EnrollStream item, DeleteSubject, CreateKey, RevokeKey) and, with
//! --audit-searches, every search writes exactly one event with the right fields, failures
//! (no key, a bad image, an unknown subject) included; the trail is append-only and readable
//! with `handmatch-server audit list`; every response carries the call's request id.

mod common;

use clap::Parser;
use common::{hand_image, pb_image, Backend};
use handmatch_core::hand_image::Aspect;
use handmatch_eval::client::ApiKey;
use handmatch_proto::v1 as pb;
use handmatch_proto::v1::admin_client::AdminClient;
use handmatch_server::access::key_admin::{self, KeyRequest};
use handmatch_server::access::AuthMode;
use handmatch_server::config::{Args, Command};
use handmatch_server::store::{AuditQuery, TemplateStore};
use tonic::transport::Channel;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_and_search_is_audited_once_on_sqlite() {
    every_write_and_search_is_audited_once(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_and_search_is_audited_once_on_postgres() {
    every_write_and_search_is_audited_once(Backend::Postgres).await
}

async fn key(url: &str, name: &str, scopes: &[&str]) -> String {
    let store = TemplateStore::connect(url, 1).await.unwrap();
    let request = KeyRequest {
        name: name.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        galleries: Vec::new(),
        all_galleries: true,
    };
    let (key, _) = key_admin::create_key(&store, request, None).await.unwrap();
    store.close().await;
    key
}

fn with_id<T>(message: T, request_id: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("x-request-id", request_id.parse().unwrap());
    r
}

fn enrolment(subject: &str, image: Vec<u8>) -> pb::EnrollRequest {
    pb::EnrollRequest {
        subject_id: subject.into(),
        images: vec![pb_image(image, pb::Aspect::Palmar)],
        ..Default::default()
    }
}

/// (request id, actor, rpc, gallery, subject, result, templates) of every event.
type Row = (String, String, String, String, String, String, i64);

async fn trail(url: &str) -> Vec<Row> {
    let store = TemplateStore::connect(url, 1).await.unwrap();
    let query = AuditQuery {
        limit: 1000,
        ..AuditQuery::default()
    };
    let events = store.audit_events(&query).await.unwrap();
    store.close().await;
    events
        .into_iter()
        .map(|r| {
            let e = r.event;
            (
                e.request_id,
                e.actor,
                e.rpc,
                e.gallery.unwrap_or_default(),
                e.subject_id.unwrap_or_default(),
                e.result,
                e.templates,
            )
        })
        .collect()
}

fn row(id: &str, actor: &str, rpc: &str, subject: &str, result: &str, templates: i64) -> Row {
    let gallery = if rpc.ends_with("Key") { "" } else { "default" };
    (
        id.into(),
        actor.into(),
        rpc.into(),
        gallery.into(),
        subject.into(),
        result.into(),
        templates,
    )
}

// Long on purpose: one trail, written call by call and then read whole.
async fn every_write_and_search_is_audited_once(backend: Backend) {
    let url = common::database(backend).await;
    let writer = key(&url, "writer", &["enroll", "delete", "identify"]).await;
    let root = key(&url, "root", &["admin"]).await;
    let mut args = Args::for_model(common::model(1), &url);
    args.auth = AuthMode::ApiKey;
    args.protection.audit_searches = true;
    let server = common::start_with(args).await.unwrap();
    let mut c = common::keyed_client(&server, Some(&writer)).await;
    let palm = || hand_image(Aspect::Palmar, 0);

    // Enrolled, then again (nothing new), then without a key, then with a broken image.
    let answer = c
        .enroll(with_id(enrolment("alice", palm()), "r-enrol"))
        .await
        .unwrap();
    let echoed = answer.metadata().get("x-request-id").unwrap();
    assert_eq!(
        echoed.to_str().unwrap(),
        "r-enrol",
        "the caller's id comes back"
    );
    c.enroll(with_id(enrolment("alice", palm()), "r-again"))
        .await
        .unwrap();
    let mut anonymous = common::keyed_client(&server, None).await;
    let refused = anonymous
        .enroll(with_id(enrolment("mallory", palm()), "r-nokey"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let broken = c
        .enroll(with_id(enrolment("bob", b"not an image".to_vec()), "r-bad"))
        .await
        .unwrap_err();
    assert_eq!(broken.code(), Code::InvalidArgument);

    // A stream of two items, the second bad: an event each.
    let items = vec![
        enrolment("carol", hand_image(Aspect::Palmar, 1)),
        enrolment("dave", Vec::new()),
    ];
    let mut results = c
        .enroll_stream(with_id(tokio_stream::iter(items), "r-stream"))
        .await
        .unwrap()
        .into_inner();
    while results.message().await.unwrap().is_some() {}

    // A search (audited with --audit-searches), a failed and a done deletion.
    let query = pb::IdentifyRequest {
        images: vec![pb_image(hand_image(Aspect::Dorsal, 0), pb::Aspect::Dorsal)],
        ..Default::default()
    };
    let found = c.identify(tonic::Request::new(query)).await.unwrap();
    let generated = found
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        generated.len(),
        36,
        "a UUID when the caller sent no id: {generated}"
    );
    let missing = pb::DeleteSubjectRequest {
        subject_id: "nobody".into(),
        gallery: String::new(),
    };
    let err = c
        .delete_subject(with_id(missing, "r-del-0"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let alice = pb::DeleteSubjectRequest {
        subject_id: "alice".into(),
        gallery: String::new(),
    };
    c.delete_subject(with_id(alice, "r-del-1")).await.unwrap();

    // Key changes over the Admin service.
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut admin = AdminClient::with_interceptor(channel, ApiKey::new(Some(&root)).unwrap());
    let new_key = pb::CreateKeyRequest {
        name: "reader".into(),
        scopes: vec!["read".into()],
        all_galleries: true,
        ..Default::default()
    };
    admin.create_key(with_id(new_key, "r-key")).await.unwrap();
    let unknown = pb::RevokeKeyRequest {
        name: "ghost".into(),
    };
    let err = admin
        .revoke_key(with_id(unknown, "r-revoke"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let peer = trail(&url).await[2].1.clone();
    assert!(peer.starts_with("peer 127.0.0.1:"), "{peer}");
    let w = "key writer";
    let expected = vec![
        row("r-enrol", w, "Enroll", "alice", "Ok", 1),
        row("r-again", w, "Enroll", "alice", "Ok", 0),
        row("r-nokey", &peer, "Enroll", "mallory", "Unauthenticated", 0),
        row("r-bad", w, "Enroll", "bob", "InvalidArgument", 0),
        row("r-stream/0", w, "EnrollStream", "carol", "Ok", 1),
        row(
            "r-stream/1",
            w,
            "EnrollStream",
            "dave",
            "InvalidArgument",
            0,
        ),
        row(&generated, w, "Identify", "", "Ok", 0),
        row("r-del-0", w, "DeleteSubject", "nobody", "NotFound", 0),
        row("r-del-1", w, "DeleteSubject", "alice", "Ok", 1),
        row("r-key", "key root", "CreateKey", "reader", "Ok", 0),
        row("r-revoke", "key root", "RevokeKey", "ghost", "NotFound", 0),
    ];
    // The stream's items run concurrently: their events may be written in either order.
    let sorted = |mut rows: Vec<Row>| {
        rows.sort();
        rows
    };
    assert_eq!(sorted(trail(&url).await), sorted(expected));

    // Append-only: the database itself refuses to change or remove an event.
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    for statement in [
        "UPDATE audit_events SET result = 'Ok'",
        "DELETE FROM audit_events",
    ] {
        let err = sqlx::query(statement).execute(&pool).await.unwrap_err();
        assert!(
            err.to_string().contains("append-only"),
            "{statement}: {err}"
        );
    }
    pool.close().await;

    // The command line reads the same trail.
    let argv = [
        "handmatch-server",
        "audit",
        "list",
        "--database-url",
        &url,
        "--subject",
        "alice",
    ];
    let Some(Command::Audit(audit)) = Args::try_parse_from(argv).unwrap().command else {
        panic!("not an audit command");
    };
    let mut out = Vec::new();
    handmatch_server::protection::run_audit_command(audit, &mut out)
        .await
        .unwrap();
    let printed = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(
        lines.len(),
        1 + 3,
        "a header and alice's three events: {printed}"
    );
    assert!(lines[3].contains("r-del-1\tkey writer\tDeleteSubject\tdefault\talice\tOk\t1"));
    server.shutdown().await.unwrap();
}
