//! Templates at rest, on both backends: sealed ones hold no plaintext and open only with
//! their key and in their own row; a rotation round-trips and resumes after a stop; a
//! server refuses a database whose keys it was not given; a deleted subject's embedding is
//! gone from a SQLite file and its WAL.

#[macro_use]
mod common;

use std::path::Path;

use common::*;
use handmatch_server::protection::{
    check_sealing, run_templates_command, RekeyArgs, TemplatesCommand,
};
use handmatch_server::store::{
    EnrolmentNotes, StoreError, TemplateKey, TemplateKeys, TemplateStore,
};
use sqlx::Row;

on_both_backends!(
    sealed_templates_hold_no_plaintext_and_open_only_with_their_key,
    a_ciphertext_copied_into_another_row_does_not_open,
    rekey_round_trips_and_resumes_after_a_stop,
    a_server_secret_is_made_once_and_shared,
    retention_deletes_only_subjects_still_expired_and_consent_is_kept,
);

fn key(byte: u8) -> TemplateKey {
    TemplateKey::from_bytes(&[byte; 32]).unwrap()
}

fn keyed(current: u8, previous: &[u8]) -> TemplateKeys {
    TemplateKeys::new(
        Some(key(current)),
        previous.iter().map(|&b| key(b)).collect(),
    )
}

async fn reopened(db: &Db, keys: TemplateKeys) -> TemplateStore {
    TemplateStore::connect(&db.url, 2)
        .await
        .unwrap()
        .with_template_keys(keys)
}

fn le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// (template_id, key_id, stored bytes) of every row, as the database holds them.
async fn stored_rows(url: &str) -> Vec<(i64, Option<String>, Vec<u8>)> {
    let pool = raw_pool(url).await;
    let rows = sqlx::query("SELECT template_id, key_id, embedding FROM templates ORDER BY 1")
        .fetch_all(&pool)
        .await
        .unwrap();
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Every subject's templates read through `store`, as (subject, template bits).
async fn read_all(store: &TemplateStore, subjects: &[&str]) -> Result<Vec<Vec<u32>>, StoreError> {
    let mut all = Vec::new();
    for s in subjects {
        let records = store.subject(G, s, MODEL).await?.unwrap();
        all.extend(records.iter().map(|r| bits(&r.embedding)));
    }
    Ok(all)
}

async fn sealed_templates_hold_no_plaintext_and_open_only_with_their_key(db: Db) {
    let store = db.store.clone().with_template_keys(keyed(1, &[]));
    store
        .enroll(MODEL, &[dorsal("alice", 1), palmar("alice", 2)])
        .await
        .unwrap();
    let plain = [le_bytes(&embedding(1)), le_bytes(&embedding(2))];
    for (id, key_id, bytes) in stored_rows(&db.url).await {
        assert_eq!(key_id.as_deref(), Some(key(1).id()), "template {id}");
        assert_eq!(bytes.len(), plain[0].len() + 28, "nonce + ciphertext + tag");
        for p in &plain {
            assert!(
                !bytes.windows(p.len()).any(|w| w == p.as_slice()),
                "template {id} holds a plaintext embedding"
            );
        }
    }
    let expected = vec![bits(&embedding(1)), bits(&embedding(2))];
    assert_eq!(read_all(&store, &["alice"]).await.unwrap(), expected);
    let reloaded = store.load_templates(MODEL).await.unwrap();
    assert_eq!(reloaded.len(), 2);

    for (name, keys) in [
        ("no key", TemplateKeys::default()),
        ("another key", keyed(2, &[])),
    ] {
        let other = reopened(&db, keys).await;
        let err = read_all(&other, &["alice"]).await.unwrap_err();
        assert!(matches!(err, StoreError::Key(_)), "{name}: {err}");
        assert!(err.to_string().contains(key(1).id()), "{name}: {err}");
        let refused = check_sealing(&other).await.unwrap_err().to_string();
        assert!(refused.contains(key(1).id()), "{name}: {refused}");
    }
    check_sealing(&store).await.unwrap();
    // A re-enrolment of the same image is still recognised (the hash is not sealed).
    let again = store.enroll(MODEL, &[dorsal("alice", 1)]).await.unwrap();
    assert!(!again[0].created);
}

async fn a_ciphertext_copied_into_another_row_does_not_open(db: Db) {
    let store = db.store.clone().with_template_keys(keyed(1, &[]));
    store.enroll(MODEL, &[palmar("alice", 1)]).await.unwrap();
    store.enroll(MODEL, &[palmar("bob", 2)]).await.unwrap();
    let rows = stored_rows(&db.url).await;
    let (alice, bob) = (&rows[0], &rows[1]);
    let pool = raw_pool(&db.url).await;
    sqlx::query("UPDATE templates SET embedding = $1 WHERE template_id = $2")
        .bind(alice.2.clone())
        .bind(bob.0)
        .execute(&pool)
        .await
        .unwrap();
    let err = read_all(&store, &["bob"]).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("moved from another row"), "{err}");
    assert_eq!(
        read_all(&store, &["alice"]).await.unwrap(),
        vec![bits(&embedding(1))]
    );
}

fn rekey_args(db: &Db, dir: &Path, old: &[u8], new: u8, stop_after: Option<u64>) -> RekeyArgs {
    let file = |b: u8| {
        let path = dir.join(format!("key-{b}"));
        std::fs::write(&path, hex::encode([b; 32])).unwrap();
        path
    };
    RekeyArgs {
        database_url: db.url.clone(),
        old_key_files: old.iter().map(|&b| file(b)).collect(),
        new_key_file: file(new),
        batch_size: 2,
        max_batches: stop_after,
    }
}

async fn rekey(args: RekeyArgs) -> u64 {
    run_templates_command(TemplatesCommand::Rekey(args))
        .await
        .unwrap()
}

async fn rekey_round_trips_and_resumes_after_a_stop(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let subjects = ["a", "b", "c", "d", "e"];
    for (n, s) in subjects.iter().enumerate() {
        db.store
            .enroll(MODEL, &[palmar(s, n as u64)])
            .await
            .unwrap();
    }
    let expected = read_all(&db.store, &subjects).await.unwrap();

    // Plaintext → key 1, stopped after one batch of two: the rest is still plaintext and
    // everything reads; run again, it finishes.
    assert_eq!(rekey(rekey_args(&db, dir.path(), &[], 1, Some(1))).await, 2);
    let with_1 = reopened(&db, keyed(1, &[])).await;
    assert_eq!(with_1.templates_not_under(key(1).id()).await.unwrap(), 3);
    assert_eq!(read_all(&with_1, &subjects).await.unwrap(), expected);
    assert_eq!(rekey(rekey_args(&db, dir.path(), &[], 1, None)).await, 3);
    assert!(stored_rows(&db.url)
        .await
        .iter()
        .all(|r| r.1.as_deref() == Some(key(1).id())));

    // Key 1 → key 2, stopped midway: rows under both keys; a server given only the new key
    // cannot read them all, one also given the previous key can.
    assert_eq!(
        rekey(rekey_args(&db, dir.path(), &[1], 2, Some(2))).await,
        4
    );
    let only_2 = reopened(&db, keyed(2, &[])).await;
    assert!(read_all(&only_2, &subjects).await.is_err());
    assert!(check_sealing(&only_2).await.is_err());
    let rotating = reopened(&db, keyed(2, &[1])).await;
    assert_eq!(read_all(&rotating, &subjects).await.unwrap(), expected);
    check_sealing(&rotating).await.unwrap();
    assert_eq!(rekey(rekey_args(&db, dir.path(), &[1], 2, None)).await, 1);
    assert_eq!(read_all(&only_2, &subjects).await.unwrap(), expected);
    check_sealing(&only_2).await.unwrap();
    assert_eq!(
        rekey(rekey_args(&db, dir.path(), &[1], 2, None)).await,
        0,
        "done"
    );
}

async fn a_server_secret_is_made_once_and_shared(db: Db) {
    let first = db.store.server_secret("image-fingerprint").await.unwrap();
    assert_eq!(first.len(), 32);
    let other_server = reopened(&db, TemplateKeys::default()).await;
    let (a, b) = tokio::join!(
        other_server.server_secret("image-fingerprint"),
        db.store.server_secret("image-fingerprint")
    );
    assert_eq!((a.unwrap(), b.unwrap()), (first.clone(), first.clone()));
    assert_ne!(db.store.server_secret("other").await.unwrap(), first);
}

async fn retention_deletes_only_subjects_still_expired_and_consent_is_kept(db: Db) {
    let s = &db.store;
    let with_consent = |c: Option<&str>| EnrolmentNotes {
        consent_reference: c.map(str::to_string),
        audit: None,
    };
    s.enroll_with(MODEL, &[palmar("old", 1)], &with_consent(Some("form-1")))
        .await
        .unwrap();
    s.enroll_with(MODEL, &[palmar("new", 2)], &with_consent(None))
        .await
        .unwrap();
    let pool = raw_pool(&db.url).await;
    sqlx::query("UPDATE subjects SET last_enrolled_at_ms = 1000 WHERE subject_id = 'old'")
        .execute(&pool)
        .await
        .unwrap();
    let cut = 2000;
    let expired = s.subjects_enrolled_before(cut, 10).await.unwrap();
    assert_eq!(expired, vec![(G.to_string(), "old".to_string())]);
    let not_expired = s.delete_subject_enrolled_before(G, "new", cut, None).await;
    assert!(matches!(not_expired, Err(StoreError::NotFound { .. })));

    // Enrolled again between the listing and the purge: it stays, its consent kept when
    // the new enrolment names none.
    s.enroll_with(MODEL, &[palmar("old", 3)], &with_consent(None))
        .await
        .unwrap();
    let kept = s.delete_subject_enrolled_before(G, "old", cut, None).await;
    assert!(matches!(kept, Err(StoreError::NotFound { .. })));
    let consent = s.subject_consent(G, "old").await.unwrap().unwrap();
    assert_eq!(consent.consent_reference.as_deref(), Some("form-1"));
    assert!(consent.last_enrolled_at_ms > cut);
    assert_eq!(templates_of(s, "old", MODEL).await.len(), 2);

    s.enroll_with(MODEL, &[palmar("old", 4)], &with_consent(Some("form-2")))
        .await
        .unwrap();
    let consent = s.subject_consent(G, "old").await.unwrap().unwrap();
    assert_eq!(consent.consent_reference.as_deref(), Some("form-2"));
    sqlx::query("UPDATE subjects SET last_enrolled_at_ms = 1000")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        s.delete_subject_enrolled_before(G, "old", cut, None)
            .await
            .unwrap(),
        3
    );
    assert!(s.subject_consent(G, "old").await.unwrap().is_none());
    assert_eq!(
        s.subjects_enrolled_before(cut, 10).await.unwrap().len(),
        1,
        "new"
    );
}

/// `sqlite://PATH` → the database file and its WAL, concatenated.
fn sqlite_file_and_wal(url: &str) -> Vec<u8> {
    let path = url.strip_prefix("sqlite://").unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    if let Ok(wal) = std::fs::read(format!("{path}-wal")) {
        bytes.extend(wal);
    }
    bytes
}

#[tokio::test]
async fn a_deleted_subject_leaves_no_embedding_in_the_sqlite_file_or_its_wal() {
    on_sqlite(|db: Db| async move {
        let gone = palmar("gone", 41);
        db.store
            .enroll(MODEL, &[gone.clone(), palmar("kept", 42)])
            .await
            .unwrap();
        let needle = le_bytes(&gone.embedding);
        let found = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle.as_slice());
        assert!(
            found(&sqlite_file_and_wal(&db.url)),
            "the plaintext embedding is on disk before the deletion (else this test proves nothing)"
        );
        db.store.delete_subject(G, "gone").await.unwrap();
        assert!(
            !found(&sqlite_file_and_wal(&db.url)),
            "the deleted embedding's bytes are still in the file or the WAL"
        );
        let kept = le_bytes(&embedding(42));
        let hay = sqlite_file_and_wal(&db.url);
        assert!(hay.windows(kept.len()).any(|w| w == kept.as_slice()));
    })
    .await
}
