//! Access control over real gRPC, on SQLite and Postgres: API keys (created with the
//! `handmatch-server keys` CLI and the Admin RPCs), scopes, galleries, revocation, and TLS.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use clap::Parser;
use common::outage::Outage;
use common::{hand_image, pb_image, Backend};
use handmatch_core::hand_image::Aspect;
use handmatch_eval::client::{ApiKey, Client};
use handmatch_proto::v1 as pb;
use handmatch_proto::v1::admin_client::AdminClient;
use handmatch_server::access::AuthMode;
use handmatch_server::config::{Args, Command};
use handmatch_server::server::RunningServer;
use handmatch_server::store::TemplateStore;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::Code;

macro_rules! on_both_backends {
    ($($body:ident),* $(,)?) => {$(
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body(super::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body(super::Backend::Postgres).await
            }
        }
    )*};
}

on_both_backends!(
    every_rpc_without_a_valid_key_is_unauthenticated_and_changes_nothing,
    each_scope_allows_exactly_its_rpcs,
    a_key_of_one_gallery_cannot_reach_another,
    a_revoked_key_stops_working_at_once,
);

/// Runs `handmatch-server keys …` in-process and returns what it printed on stdout.
async fn keys_cli(argv: &[&str]) -> String {
    let mut full = vec!["handmatch-server", "keys"];
    full.extend_from_slice(argv);
    let Some(Command::Keys(keys)) = Args::try_parse_from(full).unwrap().command else {
        panic!("not a keys command: {argv:?}");
    };
    let mut out = Vec::new();
    handmatch_server::keys_cli::run(keys, &mut out)
        .await
        .unwrap();
    String::from_utf8(out).unwrap()
}

/// A key made by `keys create`, whose output must be the key and nothing else.
async fn create_key(url: &str, name: &str, scopes: &str, galleries: &[&str]) -> String {
    let mut argv = vec![
        "create",
        "--database-url",
        url,
        "--name",
        name,
        "--scopes",
        scopes,
    ];
    if galleries.is_empty() {
        argv.push("--all-galleries");
    }
    for g in galleries {
        argv.extend(["--gallery", g]);
    }
    let printed = keys_cli(&argv).await;
    assert_eq!(printed.lines().count(), 1, "{printed:?}");
    assert!(
        printed.starts_with("hmk_") && printed.ends_with('\n'),
        "{printed:?}"
    );
    printed.trim_end().to_string()
}

const EVERY_SCOPE: &str = "enroll,identify,verify,delete,read,admin";

struct Setup {
    server: RunningServer,
    url: String,
    /// Every scope, every gallery.
    root: String,
}

/// A server that requires keys, with "alice" enrolled in the default gallery.
async fn setup(backend: Backend) -> Setup {
    let url = common::database(backend).await;
    let mut args = Args::for_model(common::model(1), &url);
    args.auth = AuthMode::ApiKey;
    let server = common::start_with(args).await.unwrap();
    let root = create_key(&url, "root", EVERY_SCOPE, &[]).await;
    let mut c = common::keyed_client(&server, Some(&root)).await;
    c.enroll(enroll_request("", "alice", 0)).await.unwrap();
    Setup { server, url, root }
}

type Admin = AdminClient<InterceptedService<Channel, ApiKey>>;

async fn admin(server: &RunningServer, key: Option<&str>) -> Admin {
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    AdminClient::with_interceptor(channel, ApiKey::new(key).unwrap())
}

fn enroll_request(gallery: &str, subject: &str, nth: usize) -> pb::EnrollRequest {
    pb::EnrollRequest {
        subject_id: subject.into(),
        images: vec![pb_image(
            hand_image(Aspect::Palmar, nth),
            pb::Aspect::Palmar,
        )],
        gallery: gallery.into(),
        ..Default::default()
    }
}

fn query_images() -> Vec<pb::Image> {
    vec![pb_image(hand_image(Aspect::Dorsal, 0), pb::Aspect::Dorsal)]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rpc {
    Enroll,
    EnrollStream,
    Identify,
    Verify,
    Delete,
    GetSubject,
    ListSubjects,
    GetInfo,
    CreateKey,
    ListKeys,
    RevokeKey,
}

const EVERY_RPC: [Rpc; 11] = [
    Rpc::Enroll,
    Rpc::EnrollStream,
    Rpc::Identify,
    Rpc::Verify,
    Rpc::Delete,
    Rpc::GetSubject,
    Rpc::ListSubjects,
    Rpc::GetInfo,
    Rpc::CreateKey,
    Rpc::ListKeys,
    Rpc::RevokeKey,
];

/// One well-formed call of `rpc` on `gallery` ("" for the default); Err is its status.
async fn call(
    server: &RunningServer,
    key: Option<&str>,
    rpc: Rpc,
    gallery: &str,
) -> Result<(), tonic::Status> {
    let mut c = common::keyed_client(server, key).await;
    let g = gallery.to_string();
    match rpc {
        Rpc::Enroll => c
            .enroll(enroll_request(gallery, "carol", 1))
            .await
            .map(drop),
        Rpc::EnrollStream => {
            let items = tokio_stream::iter(vec![enroll_request(gallery, "dave", 2)]);
            let mut results = c.enroll_stream(items).await?.into_inner();
            while let Some(r) = results.message().await? {
                if let Some(pb::enroll_stream_result::Result::Error(e)) = r.result {
                    return Err(tonic::Status::new(Code::from(e.code), e.message));
                }
            }
            Ok(())
        }
        Rpc::Identify => c
            .identify(pb::IdentifyRequest {
                images: query_images(),
                gallery: g,
                ..Default::default()
            })
            .await
            .map(drop),
        Rpc::Verify => c
            .verify(pb::VerifyRequest {
                subject_id: "alice".into(),
                images: query_images(),
                gallery: g,
                ..Default::default()
            })
            .await
            .map(drop),
        Rpc::Delete => c
            .delete_subject(pb::DeleteSubjectRequest {
                subject_id: "nobody".into(),
                gallery: g,
            })
            .await
            .map(drop),
        Rpc::GetSubject => c
            .get_subject(pb::GetSubjectRequest {
                subject_id: "alice".into(),
                gallery: g,
            })
            .await
            .map(drop),
        Rpc::ListSubjects => c
            .list_subjects(pb::ListSubjectsRequest {
                gallery: g,
                ..Default::default()
            })
            .await
            .map(drop),
        Rpc::GetInfo => c
            .get_info(pb::GetInfoRequest { gallery: g })
            .await
            .map(drop),
        Rpc::CreateKey | Rpc::ListKeys | Rpc::RevokeKey => admin_call(server, key, rpc).await,
    }
}

async fn admin_call(
    server: &RunningServer,
    key: Option<&str>,
    rpc: Rpc,
) -> Result<(), tonic::Status> {
    let mut a = admin(server, key).await;
    match rpc {
        Rpc::CreateKey => a
            .create_key(pb::CreateKeyRequest {
                name: format!("made-{}", rand::random::<u32>()),
                scopes: vec!["read".into()],
                all_galleries: true,
                ..Default::default()
            })
            .await
            .map(drop),
        Rpc::ListKeys => a.list_keys(pb::ListKeysRequest {}).await.map(drop),
        _ => a
            .revoke_key(pb::RevokeKeyRequest {
                name: "nobody".into(),
            })
            .await
            .map(drop),
    }
}

/// What the database holds: every template, every key (with its revocation).
async fn snapshot(url: &str) -> (Vec<(String, String, i64)>, Vec<(String, Option<i64>)>) {
    let store = TemplateStore::connect(url, 1).await.unwrap();
    let mut templates = Vec::new();
    for (model, _) in store.models().await.unwrap() {
        for t in store.load_templates(&model).await.unwrap() {
            templates.push((t.gallery, t.subject_id, t.template_id));
        }
    }
    let keys = store
        .api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.name, k.revoked_at_ms))
        .collect();
    store.close().await;
    (templates, keys)
}

async fn every_rpc_without_a_valid_key_is_unauthenticated_and_changes_nothing(backend: Backend) {
    let s = setup(backend).await;
    let before = snapshot(&s.url).await;
    // A key of the right shape whose secret is wrong, and one the server never issued.
    let (id, _) = s.root.rsplit_once('_').unwrap();
    let wrong_secret = format!("{id}_{}", "0".repeat(64));
    let never_issued = format!("hmk_{}_{}", "1".repeat(16), "2".repeat(64));
    for key in [
        None,
        Some("not-a-key"),
        Some(wrong_secret.as_str()),
        Some(never_issued.as_str()),
    ] {
        for rpc in EVERY_RPC {
            let status = call(&s.server, key, rpc, "").await.unwrap_err();
            assert_eq!(
                status.code(),
                Code::Unauthenticated,
                "{rpc:?} with {key:?}: {status:?}"
            );
            if let Some(k) = key {
                assert!(
                    !status.message().contains(k),
                    "the key is echoed: {status:?}"
                );
            }
        }
    }
    assert_eq!(snapshot(&s.url).await, before, "nothing was written");
    // Health needs no key.
    let channel = Channel::from_shared(format!("http://{}", s.server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
    assert_eq!(health.into_inner().status, 1, "SERVING");
    s.server.shutdown().await.unwrap();
}

/// The RPCs each scope opens (the contract in the proto's header).
fn rpcs_of(scope: &str) -> BTreeSet<Rpc> {
    match scope {
        "enroll" => [Rpc::Enroll, Rpc::EnrollStream].into(),
        "identify" => [Rpc::Identify].into(),
        "verify" => [Rpc::Verify].into(),
        "delete" => [Rpc::Delete].into(),
        "read" => [Rpc::GetSubject, Rpc::ListSubjects, Rpc::GetInfo].into(),
        "admin" => [Rpc::CreateKey, Rpc::ListKeys, Rpc::RevokeKey].into(),
        other => panic!("unknown scope {other}"),
    }
}

async fn each_scope_allows_exactly_its_rpcs(backend: Backend) {
    let s = setup(backend).await;
    for scope in EVERY_SCOPE.split(',') {
        let key = create_key(&s.url, &format!("only-{scope}"), scope, &[]).await;
        let allowed = rpcs_of(scope);
        for rpc in EVERY_RPC {
            let result = call(&s.server, Some(&key), rpc, "").await;
            if allowed.contains(&rpc) {
                // Allowed calls may still fail for their own reasons (NOT_FOUND for "nobody").
                if let Err(status) = &result {
                    assert!(
                        !matches!(
                            status.code(),
                            Code::PermissionDenied | Code::Unauthenticated
                        ),
                        "{scope} should allow {rpc:?}: {status:?}"
                    );
                }
            } else {
                let status = result.expect_err("refused");
                assert_eq!(
                    status.code(),
                    Code::PermissionDenied,
                    "{scope} / {rpc:?}: {status:?}"
                );
                assert!(status.message().contains("scope"), "{status:?}");
            }
        }
    }
    // A key with two scopes has both.
    let both = create_key(&s.url, "enroll-read", "enroll,read", &[]).await;
    assert!(call(&s.server, Some(&both), Rpc::Enroll, "").await.is_ok());
    assert!(call(&s.server, Some(&both), Rpc::GetSubject, "")
        .await
        .is_ok());
    s.server.shutdown().await.unwrap();
}

async fn subject(c: &mut Client, gallery: &str, id: &str) -> Result<pb::Subject, tonic::Status> {
    c.get_subject(pb::GetSubjectRequest {
        subject_id: id.into(),
        gallery: gallery.into(),
    })
    .await
    .map(|r| r.into_inner())
}

async fn a_key_of_one_gallery_cannot_reach_another(backend: Backend) {
    let s = setup(backend).await;
    let not_admin = "enroll,identify,verify,delete,read";
    let key_a = create_key(&s.url, "site-a", not_admin, &["a"]).await;
    let key_b = create_key(&s.url, "site-b", not_admin, &["b"]).await;
    let (mut a, mut b) = (
        common::keyed_client(&s.server, Some(&key_a)).await,
        common::keyed_client(&s.server, Some(&key_b)).await,
    );
    // The same subject id in both galleries, with different images: two subjects.
    a.enroll(enroll_request("a", "alice", 3)).await.unwrap();
    b.enroll(enroll_request("b", "alice", 4)).await.unwrap();
    b.enroll(enroll_request("b", "bob", 5)).await.unwrap();
    let (alice_a, alice_b) = (
        subject(&mut a, "a", "alice").await.unwrap(),
        subject(&mut b, "b", "alice").await.unwrap(),
    );
    assert_ne!(
        alice_a.templates[0].image_fingerprint,
        alice_b.templates[0].image_fingerprint
    );
    assert_eq!(
        (alice_a.gallery.as_str(), alice_b.gallery.as_str()),
        ("a", "b")
    );

    // Every RPC of key A on gallery B (and on the default gallery) is refused.
    for rpc in EVERY_RPC.into_iter().filter(|r| *r < Rpc::CreateKey) {
        for gallery in ["b", ""] {
            let status = call(&s.server, Some(&key_a), rpc, gallery)
                .await
                .unwrap_err();
            assert_eq!(
                status.code(),
                Code::PermissionDenied,
                "{rpc:?} on {gallery:?}: {status:?}"
            );
        }
    }
    // In its own gallery, key A sees only gallery A: one subject, never bob.
    let found = a
        .identify(pb::IdentifyRequest {
            images: query_images(),
            gallery: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.gallery_subjects, 1);
    assert!(found.candidates.iter().all(|c| c.subject_id == "alice"));
    let listed = a
        .list_subjects(pb::ListSubjectsRequest {
            gallery: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.subjects.len(), 1);
    let info = a
        .get_info(pb::GetInfoRequest {
            gallery: "a".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((info.gallery_subjects, info.gallery_templates), (1, 1));

    // A stream of key A: the item for gallery B fails alone, the one for A is enrolled.
    let items = vec![
        enroll_request("b", "mallory", 6),
        enroll_request("a", "erin", 7),
    ];
    let mut results = a
        .enroll_stream(tokio_stream::iter(items))
        .await
        .unwrap()
        .into_inner();
    let mut outcomes = Vec::new();
    while let Some(r) = results.message().await.unwrap() {
        outcomes.push(match r.result.unwrap() {
            pb::enroll_stream_result::Result::Error(e) => Code::from(e.code),
            pb::enroll_stream_result::Result::Enrolled(_) => Code::Ok,
        });
    }
    assert_eq!(outcomes, [Code::PermissionDenied, Code::Ok]);
    assert_eq!(
        subject(&mut b, "b", "mallory").await.unwrap_err().code(),
        Code::NotFound
    );

    // Deleting alice in A leaves alice in B.
    a.delete_subject(pb::DeleteSubjectRequest {
        subject_id: "alice".into(),
        gallery: "a".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        subject(&mut a, "a", "alice").await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        subject(&mut b, "b", "alice").await.unwrap().templates.len(),
        1
    );
    let in_b = b
        .identify(pb::IdentifyRequest {
            images: query_images(),
            gallery: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(in_b.gallery_subjects, 2);
    s.server.shutdown().await.unwrap();
}

async fn a_revoked_key_stops_working_at_once(backend: Backend) {
    let s = setup(backend).await;
    // Revoked over the Admin RPC by an admin key.
    let over_grpc = create_key(&s.url, "revoked-by-rpc", "read", &[]).await;
    assert!(call(&s.server, Some(&over_grpc), Rpc::GetInfo, "")
        .await
        .is_ok());
    let revoked = admin(&s.server, Some(&s.root))
        .await
        .revoke_key(pb::RevokeKeyRequest {
            name: "revoked-by-rpc".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoked_at_ms.is_some());
    let status = call(&s.server, Some(&over_grpc), Rpc::GetInfo, "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("revoked"), "{status:?}");

    // Revoked with the CLI on the database, while the server runs.
    let by_cli = create_key(&s.url, "revoked-by-cli", "read", &[]).await;
    assert!(call(&s.server, Some(&by_cli), Rpc::GetInfo, "")
        .await
        .is_ok());
    let printed = keys_cli(&[
        "revoke",
        "--database-url",
        &s.url,
        "--name",
        "revoked-by-cli",
    ])
    .await;
    assert_eq!(printed.trim(), "revoked revoked-by-cli");
    let status = call(&s.server, Some(&by_cli), Rpc::GetInfo, "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    // The listing shows both revoked, the root key in use, and never a secret.
    let listing = keys_cli(&["list", "--database-url", &s.url]).await;
    assert!(!listing.contains(&s.root[20..]), "{listing}");
    let line = |name: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .to_string()
    };
    assert!(!line("revoked-by-rpc\t").ends_with("\t-"), "{listing}");
    assert!(line("root\t").ends_with("\t-"), "{listing}");
    // A key created over gRPC works with the client too, and its name stays unique.
    let mut a = admin(&s.server, Some(&s.root)).await;
    let made = a
        .create_key(pb::CreateKeyRequest {
            name: "made-over-grpc".into(),
            scopes: vec!["identify".into()],
            galleries: vec!["default".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(call(&s.server, Some(&made.key), Rpc::Identify, "")
        .await
        .is_ok());
    let again = a
        .create_key(pb::CreateKeyRequest {
            name: "made-over-grpc".into(),
            scopes: vec!["read".into()],
            all_galleries: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    s.server.shutdown().await.unwrap();
}

/// While the database is away, a key verified shortly before keeps its grant (searches go
/// on from memory, without waiting for the database each time), a key the server has not
/// seen is not let in, and writes fail UNAVAILABLE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_seen_before_keep_searching_while_the_database_is_away() {
    let real = common::database(Backend::Postgres).await;
    let name = real.rsplit('/').next().unwrap().to_string();
    let mut outage = Outage::new().await;
    outage.up().await;
    let mut args = Args::for_model(
        common::model(1),
        format!("postgres://postgres@{}/{name}", outage.addr),
    );
    args.auth = AuthMode::ApiKey;
    let server = common::start_with(args).await.unwrap();
    let seen = create_key(&real, "seen", "enroll,identify", &[]).await;
    let unseen = create_key(&real, "unseen", "identify", &[]).await;
    common::keyed_client(&server, Some(&seen))
        .await
        .enroll(enroll_request("", "alice", 0))
        .await
        .unwrap();

    outage.down();
    let start = Instant::now();
    for _ in 0..5 {
        call(&server, Some(&seen), Rpc::Identify, "").await.unwrap();
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "5 searches took {:?}",
        start.elapsed()
    );
    let refused = call(&server, Some(&unseen), Rpc::Identify, "")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let write = call(&server, Some(&seen), Rpc::Enroll, "")
        .await
        .unwrap_err();
    assert_eq!(write.code(), Code::Unavailable, "{write:?}");

    outage.up().await;
    let until = Instant::now() + Duration::from_secs(20);
    while call(&server, Some(&unseen), Rpc::Identify, "")
        .await
        .is_err()
    {
        assert!(
            Instant::now() < until,
            "the unseen key never worked after the outage"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.shutdown().await.unwrap();
}
