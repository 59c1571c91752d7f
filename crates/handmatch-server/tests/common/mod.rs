//! The stores' test harness, shared by the test files that open a store: each test body
//! runs on a fresh SQLite file and on a fresh Postgres schema (`DATABASE_URL`, else
//! postgres://postgres@127.0.0.1:5432/test). Postgres being unreachable fails the Postgres
//! variants; it never skips them. Also the fixtures' templates.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use handmatch_server::store::{
    Aspect, EnrollOutcome, HandSide, NewTemplate, TemplateRecord, TemplateStore,
};
use sqlx::{AnyPool, Connection, Executor};

pub const MODEL: &str = "resnet50-hands@3";
/// The gallery of the tests that are not about galleries.
pub const G: &str = "default";
pub const OTHER_MODEL: &str = "dinov2-s14@1";
pub const DIM: usize = 8;

/// One test module per body, with a `sqlite` and a `postgres` test (the file must `use
/// common::*`).
macro_rules! on_both_backends {
    ($($body:ident),* $(,)?) => {$(
        mod $body {
            #[tokio::test]
            async fn sqlite() {
                super::on_sqlite(super::$body).await
            }
            #[tokio::test]
            async fn postgres() {
                super::on_postgres(super::$body).await
            }
        }
    )*};
}

/// A store on a database of its own, and the URL it was opened with (to reconnect).
pub struct Db {
    pub store: TemplateStore,
    pub url: String,
}

/// Runs `body` as a task of its own, so that its panic comes back as a value: the harness
/// cleans up (a failing test must not leak its Postgres schema) and then re-raises it.
pub async fn run_isolated<F, Fut>(db: Db, body: F) -> std::thread::Result<()>
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(body(db)).await.map_err(|e| e.into_panic())
}

pub async fn on_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    // Absolute form (sqlite:///tmp/…), in folders that do not exist yet.
    let url = format!("sqlite://{}/nested/dir/templates.db", dir.path().display());
    let store = TemplateStore::connect(&url, 4)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    let outcome = run_isolated(Db { store, url }, body).await;
    drop(dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server to test against, and how to name it in a failure without printing a password.
pub fn postgres_base_url() -> (String, String) {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => (url, "the server DATABASE_URL names".into()),
        _ => (
            DEFAULT_POSTGRES_URL.to_string(),
            format!("{DEFAULT_POSTGRES_URL} (DATABASE_URL unset)"),
        ),
    }
}

pub async fn on_postgres<F, Fut>(body: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (base, server) = postgres_base_url();
    let mut admin = match tokio::time::timeout(
        Duration::from_secs(10),
        sqlx::postgres::PgConnection::connect(&base),
    )
    .await
    {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!("Postgres tests need a server: cannot connect to {server}: {e}"),
        Err(_) => panic!("Postgres tests need a server: no answer within 10 s from {server}"),
    };
    // Tests run in parallel: each gets its own schema, selected through the URL so that
    // every pooled connection (and every reconnect) lands in it.
    let schema = format!("hm_test_{:016x}", rand::random::<u64>());
    admin
        .execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap_or_else(|e| panic!("create schema {schema}: {e}"));
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");

    let (outcome, connect_error) = match TemplateStore::connect(&url, 4).await {
        Ok(store) => (run_isolated(Db { store, url }, body).await, None),
        Err(e) => (
            Ok(()),
            Some(format!("connect to the test schema {schema}: {e}")),
        ),
    };

    // A test that panicked mid-transaction may leave a backend finishing its rollback;
    // don't wait on it forever.
    let dropped = admin
        .execute(format!("SET lock_timeout = '10s'; DROP SCHEMA {schema} CASCADE").as_str())
        .await;
    if let Err(e) = dropped {
        eprintln!("warning: could not drop test schema {schema}: {e}");
    }
    let _ = admin.close().await;
    if let Some(message) = connect_error {
        panic!("{message}");
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A plain pool on the test database, for what the store's API deliberately cannot do.
pub async fn raw_pool(url: &str) -> AnyPool {
    sqlx::any::install_default_drivers();
    AnyPool::connect(url).await.expect("raw connection")
}

// ---------------------------------------------------------------------------------------------
// Fixtures

pub fn sha(n: u64) -> String {
    format!("{n:064x}")
}

/// Deterministic, awkward values: negative zero, a subnormal, long mantissas.
pub fn embedding(seed: u64) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIM)
        .map(|i| ((seed as f32 + 1.0) * 0.618_034 + i as f32 * 1.324_718).sin())
        .collect();
    v[0] = -0.0;
    v[1] = f32::from_bits(1 + seed as u32);
    v
}

pub fn template(subject: &str, aspect: Aspect, side: HandSide, n: u64) -> NewTemplate {
    NewTemplate {
        gallery: G.to_string(),
        subject_id: subject.to_string(),
        aspect,
        side,
        image_sha256: sha(n),
        embedding: embedding(n),
    }
}

pub fn dorsal(subject: &str, n: u64) -> NewTemplate {
    template(subject, Aspect::Dorsal, HandSide::Left, n)
}

pub fn palmar(subject: &str, n: u64) -> NewTemplate {
    template(subject, Aspect::Palmar, HandSide::Right, n)
}

pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

pub fn ids(outcomes: &[EnrollOutcome]) -> Vec<i64> {
    outcomes.iter().map(|o| o.template_id).collect()
}

pub async fn templates_of(
    store: &TemplateStore,
    subject: &str,
    model: &str,
) -> Vec<TemplateRecord> {
    store
        .subject(G, subject, model)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("subject {subject} should exist"))
}
