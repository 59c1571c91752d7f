//! The template store, run against both backends (the harness in `common`): each test
//! body below is written once and runs on a fresh SQLite file and on a fresh Postgres schema.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::*;
use handmatch_server::store::{
    Aspect, ChangeKind, EnrollOutcome, HandSide, NewApiKey, NewTemplate, StoreError,
    SubjectSummary, TemplateRecord, TemplateStore,
};

on_both_backends!(
    enroll_and_read_back,
    reenroll_is_idempotent,
    failed_batch_leaves_nothing,
    delete_subject_removes_every_model,
    schema_cascades_subject_deletion,
    data_survives_reconnect,
    list_subjects_pages_without_duplicates,
    list_subjects_orders_bytewise,
    models_and_delete_model,
    load_templates_in_id_order,
    mixed_dimensions_on_disk_are_corrupt,
    concurrent_enrollments_agree,
    ping_and_backend_name,
    galleries_keep_same_named_subjects_apart,
    api_keys_are_created_found_listed_and_revoked,
    change_feed_records_each_write_once_in_order,
    change_feed_prunes_but_keeps_the_newest,
);

// ---------------------------------------------------------------------------------------------
// Bodies

fn subject_of(g: &str, s: &str) -> Option<(String, String)> {
    Some((g.to_string(), s.to_string()))
}

async fn change_feed_records_each_write_once_in_order(db: Db) {
    let store = db.store;
    assert_eq!(store.change_head().await.unwrap(), 0);
    let first = store
        .enroll(MODEL, &[palmar("alice", 1), dorsal("alice", 2)])
        .await
        .unwrap();
    // A repeat adds nothing a search could see: no change.
    store.enroll(MODEL, &[palmar("alice", 1)]).await.unwrap();
    let bob = store.enroll(MODEL, &[palmar("bob", 3)]).await.unwrap();
    assert_eq!(store.delete_subject(G, "alice").await.unwrap(), 2);
    // A failed write leaves no change either.
    assert!(store.delete_subject(G, "alice").await.is_err());
    let carol = store
        .enroll(OTHER_MODEL, &[palmar("carol", 4)])
        .await
        .unwrap();
    assert_eq!(store.delete_model(OTHER_MODEL).await.unwrap(), 1);

    let read = store.changes_after(0, 100).await.unwrap();
    let seen: Vec<_> = read
        .changes
        .iter()
        .map(|c| {
            (
                c.kind,
                c.subject.clone(),
                c.model_id.clone(),
                c.template_ids.clone(),
            )
        })
        .collect();
    let m = |s: &str| Some(s.to_string());
    assert_eq!(
        seen,
        [
            (
                ChangeKind::Enrolled,
                subject_of(G, "alice"),
                m(MODEL),
                ids(&first)
            ),
            (
                ChangeKind::Enrolled,
                subject_of(G, "bob"),
                m(MODEL),
                ids(&bob)
            ),
            (
                ChangeKind::SubjectDeleted,
                subject_of(G, "alice"),
                None,
                ids(&first)
            ),
            (
                ChangeKind::Enrolled,
                subject_of(G, "carol"),
                m(OTHER_MODEL),
                ids(&carol)
            ),
            (ChangeKind::ModelDeleted, None, m(OTHER_MODEL), vec![]),
        ]
    );
    let seqs: Vec<i64> = read.changes.iter().map(|c| c.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    assert_eq!(store.change_head().await.unwrap(), *seqs.last().unwrap());
    let rest = store.changes_after(seqs[1], 2).await.unwrap();
    assert_eq!(
        rest.changes.iter().map(|c| c.seq).collect::<Vec<_>>(),
        seqs[2..4],
        "after a position, at most the limit"
    );
    assert_eq!(rest.pruned_through, 0);
}

async fn change_feed_prunes_but_keeps_the_newest(db: Db) {
    let store = db.store;
    for n in 0..5 {
        store
            .enroll(MODEL, &[palmar(&format!("s{n}"), n)])
            .await
            .unwrap();
    }
    let head = store.change_head().await.unwrap();
    assert_eq!(
        store
            .prune_changes(Duration::from_secs(3600))
            .await
            .unwrap(),
        0,
        "nothing is an hour old"
    );
    // Written in an earlier millisecond than the prune: everything but the newest goes.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(store.prune_changes(Duration::ZERO).await.unwrap(), 4);
    let read = store.changes_after(0, 100).await.unwrap();
    assert_eq!(read.changes.len(), 1);
    assert_eq!(read.changes[0].seq, head);
    assert_eq!(read.pruned_through, head - 1);
    assert_eq!(
        store.change_head().await.unwrap(),
        head,
        "the head survives pruning"
    );
    assert_eq!(store.prune_changes(Duration::ZERO).await.unwrap(), 0);
}

fn in_gallery(gallery: &str, mut t: NewTemplate) -> NewTemplate {
    t.gallery = gallery.to_string();
    t
}

async fn galleries_keep_same_named_subjects_apart(db: Db) {
    let store = db.store;
    // The same subject id and the same image in two galleries: two subjects, two templates.
    let a = store
        .enroll(MODEL, &[in_gallery("a", palmar("alice", 1))])
        .await
        .unwrap();
    let b = store
        .enroll(
            MODEL,
            &[
                in_gallery("b", palmar("alice", 1)),
                in_gallery("b", dorsal("alice", 2)),
            ],
        )
        .await
        .unwrap();
    assert!(a[0].created && b[0].created && a[0].template_id != b[0].template_id);
    let of = |g: &'static str| {
        let store = store.clone();
        async move {
            store
                .subject(g, "alice", MODEL)
                .await
                .unwrap()
                .unwrap()
                .len()
        }
    };
    assert_eq!((of("a").await, of("b").await), (1, 2));
    assert_eq!(store.subject("c", "alice", MODEL).await.unwrap(), None);
    let (page, _) = store.list_subjects(MODEL, "b", 10, None).await.unwrap();
    assert_eq!((page.len(), page[0].dorsal_templates), (1, 1));
    assert!(store
        .list_subjects(MODEL, "c", 10, None)
        .await
        .unwrap()
        .0
        .is_empty());
    let loaded = store.load_templates(MODEL).await.unwrap();
    let galleries: Vec<&str> = loaded.iter().map(|r| r.gallery.as_str()).collect();
    assert_eq!(galleries, ["a", "b", "b"]);

    assert_eq!(store.delete_subject("b", "alice").await.unwrap(), 2);
    assert_eq!(of("a").await, 1, "deleting in b leaves a's alice alone");
    assert!(matches!(
        store.delete_subject("b", "alice").await,
        Err(StoreError::NotFound { gallery, .. }) if gallery == "b"
    ));
    // The schema refuses a gallery name outside the rule, whoever writes it.
    let bad = store
        .enroll(MODEL, &[in_gallery("a,b", palmar("x", 3))])
        .await;
    assert!(matches!(bad, Err(StoreError::InvalidInput(_))), "{bad:?}");
}

fn new_key(name: &str, key_id: &str) -> NewApiKey {
    NewApiKey {
        name: name.into(),
        key_id: key_id.into(),
        secret_sha256: "ab".repeat(32),
        scopes: vec!["enroll".into(), "read".into()],
        galleries: vec!["a".into(), "b".into()],
    }
}

async fn api_keys_are_created_found_listed_and_revoked(db: Db) {
    let store = db.store;
    let created = store
        .create_api_key(&new_key("ops", "0123456789abcdef"), None)
        .await
        .unwrap();
    assert_eq!(created.scopes, ["enroll", "read"]);
    assert_eq!(created.galleries, ["a", "b"]);
    assert_eq!(
        (created.last_used_at_ms, created.revoked_at_ms),
        (None, None)
    );
    let again = store
        .create_api_key(&new_key("ops", "fedcba9876543210"), None)
        .await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists(_))),
        "{again:?}"
    );
    store
        .create_api_key(&new_key("ci", "1111111111111111"), None)
        .await
        .unwrap();

    let found = store
        .api_key_by_id("0123456789abcdef")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, created);
    assert_eq!(store.api_key_by_id("2222222222222222").await.unwrap(), None);
    store.touch_api_key("0123456789abcdef").await.unwrap();
    let touched = store
        .api_key_by_id("0123456789abcdef")
        .await
        .unwrap()
        .unwrap();
    assert!(touched.last_used_at_ms.is_some());

    let names: Vec<String> = store
        .api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(names, ["ci", "ops"]);
    let revoked = store.revoke_api_key("ops", None).await.unwrap();
    let first = revoked.revoked_at_ms.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let twice = store.revoke_api_key("ops", None).await.unwrap();
    assert_eq!(
        twice.revoked_at_ms,
        Some(first),
        "the first revocation time stays"
    );
    assert!(matches!(
        store.revoke_api_key("nobody", None).await,
        Err(StoreError::NoSuchKey(_))
    ));
    let bad_name = store
        .create_api_key(&new_key("no spaces", "3333333333333333"), None)
        .await;
    assert!(
        matches!(bad_name, Err(StoreError::InvalidInput(_))),
        "{bad_name:?}"
    );
}

async fn enroll_and_read_back(db: Db) {
    let store = db.store;
    let mut upper_hash = palmar("alice", 3);
    upper_hash.image_sha256 = upper_hash.image_sha256.replace('0', "A");
    let items = vec![
        dorsal("alice", 1),
        template("alice", Aspect::Dorsal, HandSide::Unknown, 2),
        upper_hash.clone(),
        dorsal("bob", 4),
    ];
    let before = now_ms();
    let outcomes = store.enroll(MODEL, &items).await.unwrap();
    let after = now_ms();
    assert!(outcomes.iter().all(|o| o.created), "{outcomes:?}");
    assert!(
        ids(&outcomes).windows(2).all(|w| w[0] < w[1]),
        "{outcomes:?}"
    );

    let alice = templates_of(&store, "alice", MODEL).await;
    assert_eq!(alice.len(), 3);
    for ((record, item), outcome) in alice.iter().zip(&items).zip(&outcomes) {
        assert_eq!(record.template_id, outcome.template_id);
        assert_eq!(record.subject_id, "alice");
        assert_eq!(record.aspect, item.aspect);
        assert_eq!(record.side, item.side);
        assert_eq!(bits(&record.embedding), bits(&item.embedding), "bit-exact");
        assert!((before..=after).contains(&record.created_at_ms));
    }
    assert_eq!(alice[0].image_sha256, sha(1));
    assert_eq!(
        alice[2].image_sha256,
        upper_hash.image_sha256.to_lowercase(),
        "hashes are stored lowercase"
    );

    assert_eq!(
        store.subject(G, "alice", OTHER_MODEL).await.unwrap(),
        Some(vec![]),
        "an existing subject without templates of the model"
    );
    assert_eq!(store.subject(G, "carol", MODEL).await.unwrap(), None);
    assert_eq!(store.enroll(MODEL, &[]).await.unwrap(), vec![]);
}

async fn reenroll_is_idempotent(db: Db) {
    let store = db.store;
    // 0xabc: a hash with letters, to re-enroll in upper case.
    let items = vec![dorsal("alice", 1), palmar("alice", 0xabc), dorsal("bob", 3)];
    let first = store.enroll(MODEL, &items).await.unwrap();

    // Same images again, even with a different embedding: the stored template stands.
    let mut again = items.clone();
    again[0].embedding = embedding(99);
    again[1].image_sha256 = again[1].image_sha256.to_uppercase();
    let second = store.enroll(MODEL, &again).await.unwrap();
    assert_eq!(ids(&second), ids(&first));
    assert!(second.iter().all(|o| !o.created), "{second:?}");
    let alice = templates_of(&store, "alice", MODEL).await;
    assert_eq!(bits(&alice[0].embedding), bits(&items[0].embedding));

    // Old and new mixed, and a duplicate inside one batch.
    let mixed = store
        .enroll(
            MODEL,
            &[dorsal("alice", 1), dorsal("carol", 4), dorsal("carol", 4)],
        )
        .await
        .unwrap();
    assert_eq!(
        mixed[0],
        EnrollOutcome {
            template_id: first[0].template_id,
            created: false
        }
    );
    assert!(mixed[1].created);
    assert_eq!(
        mixed[2],
        EnrollOutcome {
            template_id: mixed[1].template_id,
            created: false
        }
    );

    // The same image under another model is another template.
    let other = store
        .enroll(OTHER_MODEL, &[dorsal("alice", 1)])
        .await
        .unwrap();
    assert!(other[0].created);
    assert!(!ids(&first).contains(&other[0].template_id));

    assert_eq!(store.load_templates(MODEL).await.unwrap().len(), 4);
}

async fn failed_batch_leaves_nothing(db: Db) {
    let store = db.store;
    let kept = store.enroll(MODEL, &[dorsal("carol", 1)]).await.unwrap();

    // The third item breaks the schema's subject_id limit after two inserts have run.
    let too_long = "x".repeat(129);
    let batch = [dorsal("alice", 2), dorsal("carol", 3), dorsal(&too_long, 4)];
    let err = store.enroll(MODEL, &batch).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
    assert!(err.to_string().contains("item 2"), "{err}");
    assert!(err.to_string().contains("subject_id_length"), "{err}");

    assert_eq!(store.subject(G, "alice", MODEL).await.unwrap(), None);
    assert_eq!(store.subject(G, &too_long, MODEL).await.unwrap(), None);
    let carol = templates_of(&store, "carol", MODEL).await;
    assert_eq!(
        carol.iter().map(|t| t.template_id).collect::<Vec<_>>(),
        ids(&kept)
    );
    assert_eq!(store.models().await.unwrap(), vec![(MODEL.to_string(), 1)]);

    // The model already stores DIM values per template.
    let mut short = dorsal("dave", 5);
    short.embedding.truncate(DIM / 2);
    let err = store.enroll(MODEL, &[short.clone()]).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
    assert!(err.to_string().contains(&format!("stores {DIM}")), "{err}");
    assert_eq!(store.subject(G, "dave", MODEL).await.unwrap(), None);

    // Checked before any write: mixed dimensions in a batch, bad hashes, non-finite values.
    let mut not_hex = dorsal("dave", 6);
    not_hex.image_sha256 = "not a hash".into();
    let mut nan = dorsal("dave", 7);
    nan.embedding[3] = f32::NAN;
    for batch in [
        vec![dorsal("dave", 8), short],
        vec![dorsal("dave", 8), not_hex],
        vec![dorsal("dave", 8), nan],
    ] {
        let err = store.enroll(MODEL, &batch).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
        assert!(err.to_string().contains("item 1"), "{err}");
    }
    assert_eq!(store.subject(G, "dave", MODEL).await.unwrap(), None);
    assert_eq!(store.load_templates(MODEL).await.unwrap().len(), 1);
}

async fn delete_subject_removes_every_model(db: Db) {
    let store = db.store;
    store
        .enroll(
            MODEL,
            &[dorsal("alice", 1), palmar("alice", 2), dorsal("bob", 3)],
        )
        .await
        .unwrap();
    store
        .enroll(OTHER_MODEL, &[dorsal("alice", 1)])
        .await
        .unwrap();

    assert_eq!(store.delete_subject(G, "alice").await.unwrap(), 3);
    assert_eq!(store.subject(G, "alice", MODEL).await.unwrap(), None);
    assert_eq!(store.subject(G, "alice", OTHER_MODEL).await.unwrap(), None);
    assert!(store.load_templates(OTHER_MODEL).await.unwrap().is_empty());
    let left = store.load_templates(MODEL).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].subject_id, "bob");

    for gone in ["alice", "nobody"] {
        match store.delete_subject(G, gone).await {
            Err(StoreError::NotFound { subject_id, .. }) => assert_eq!(subject_id, gone),
            other => panic!("deleting {gone}: expected NotFound, got {other:?}"),
        }
    }

    // Re-enrolling a deleted subject starts afresh.
    let again = store.enroll(MODEL, &[dorsal("alice", 1)]).await.unwrap();
    assert!(again[0].created);
}

async fn schema_cascades_subject_deletion(db: Db) {
    let store = db.store;
    store
        .enroll(MODEL, &[dorsal("alice", 1), dorsal("bob", 2)])
        .await
        .unwrap();
    store
        .enroll(OTHER_MODEL, &[dorsal("alice", 1)])
        .await
        .unwrap();
    // Behind the store's back: the foreign key itself must take the templates along.
    let raw = raw_pool(&db.url).await;
    sqlx::query("DELETE FROM subjects WHERE subject_id = $1")
        .bind("alice")
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;
    let subjects = |t: Vec<TemplateRecord>| t.into_iter().map(|t| t.subject_id).collect::<Vec<_>>();
    assert_eq!(
        subjects(store.load_templates(MODEL).await.unwrap()),
        ["bob"]
    );
    assert!(store.load_templates(OTHER_MODEL).await.unwrap().is_empty());
}

async fn data_survives_reconnect(db: Db) {
    let items = [dorsal("alice", 1), palmar("bob", 2)];
    let enrolled = db.store.enroll(MODEL, &items).await.unwrap();
    let before = db.store.load_templates(MODEL).await.unwrap();
    db.store.close().await;
    drop(db.store);

    let store = TemplateStore::connect(&db.url, 2).await.unwrap();
    assert_eq!(store.load_templates(MODEL).await.unwrap(), before);
    let again = store.enroll(MODEL, &items).await.unwrap();
    assert_eq!(ids(&again), ids(&enrolled));
    assert!(again.iter().all(|o| !o.created));
    // New ids keep growing after the restart.
    let next = store.enroll(MODEL, &[dorsal("carol", 3)]).await.unwrap();
    assert!(next[0].template_id > *ids(&enrolled).iter().max().unwrap());
}

async fn list_subjects_pages_without_duplicates(db: Db) {
    let store = db.store;
    // 25 subjects, enrolled out of order, 1-3 dorsal and 0-1 palmar templates each.
    let mut expected = Vec::new();
    let mut items = Vec::new();
    for i in (0..25u64).map(|i| (i * 7) % 25) {
        let subject = format!("subject-{i:02}");
        let dorsal_count = 1 + i % 3;
        let palmar_count = i % 2;
        for k in 0..dorsal_count {
            items.push(dorsal(&subject, 100 * i + k));
        }
        for k in 0..palmar_count {
            items.push(palmar(&subject, 100 * i + 50 + k));
        }
        expected.push(SubjectSummary {
            subject_id: subject,
            dorsal_templates: dorsal_count as u32,
            palmar_templates: palmar_count as u32,
        });
    }
    store.enroll(MODEL, &items).await.unwrap();
    // Subjects of another model only are not listed.
    store
        .enroll(OTHER_MODEL, &[dorsal("other-only", 1)])
        .await
        .unwrap();
    expected.sort_by(|a, b| a.subject_id.cmp(&b.subject_id));

    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    let mut page_lengths = Vec::new();
    loop {
        let (page, next) = store
            .list_subjects(MODEL, G, 10, after.as_deref())
            .await
            .unwrap();
        page_lengths.push(page.len());
        listed.extend(page);
        match next {
            Some(last) => {
                assert_eq!(Some(&last), listed.last().map(|s| &s.subject_id));
                after = Some(last);
            }
            None => break,
        }
        assert!(page_lengths.len() < 10, "pagination does not end");
    }
    assert_eq!(page_lengths, [10, 10, 5]);
    assert_eq!(listed, expected);

    // A last page that is exactly full says no more follow.
    let (page, next) = store
        .list_subjects(MODEL, G, 5, Some("subject-19"))
        .await
        .unwrap();
    assert_eq!(page.len(), 5);
    assert_eq!(next, None);
    let (page, next) = store
        .list_subjects(MODEL, G, 10, Some("subject-24"))
        .await
        .unwrap();
    assert!(page.is_empty() && next.is_none());
    assert!(store
        .list_subjects("no-such-model", G, 10, None)
        .await
        .unwrap()
        .0
        .is_empty());

    let err = store.list_subjects(MODEL, G, 0, None).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
}

async fn list_subjects_orders_bytewise(db: Db) {
    let store = db.store;
    let mut names = ["adam", "Zed", "_x", "Émile", "eve", "10", "9", "a b"];
    let items: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, n)| dorsal(n, i as u64))
        .collect();
    store.enroll(MODEL, &items).await.unwrap();
    names.sort(); // Rust compares strings bytewise, as the store promises on both backends.
    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let (page, next) = store
            .list_subjects(MODEL, G, 3, after.as_deref())
            .await
            .unwrap();
        listed.extend(page.into_iter().map(|s| s.subject_id));
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(listed, names);
}

async fn models_and_delete_model(db: Db) {
    let store = db.store;
    assert_eq!(store.models().await.unwrap(), vec![]);
    store
        .enroll(
            MODEL,
            &[dorsal("alice", 1), palmar("alice", 2), dorsal("bob", 3)],
        )
        .await
        .unwrap();
    store
        .enroll(OTHER_MODEL, &[dorsal("alice", 1), dorsal("carol", 4)])
        .await
        .unwrap();
    let mut expected = vec![(MODEL.to_string(), 3), (OTHER_MODEL.to_string(), 2)];
    expected.sort();
    assert_eq!(store.models().await.unwrap(), expected);

    assert_eq!(store.delete_model(MODEL).await.unwrap(), 3);
    assert_eq!(
        store.models().await.unwrap(),
        vec![(OTHER_MODEL.to_string(), 2)]
    );
    // bob had templates of the deleted model only: gone with it. alice keeps the other model.
    assert_eq!(store.subject(G, "bob", OTHER_MODEL).await.unwrap(), None);
    assert!(matches!(
        store.delete_subject(G, "bob").await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        store.subject(G, "alice", MODEL).await.unwrap(),
        Some(vec![])
    );
    assert_eq!(templates_of(&store, "alice", OTHER_MODEL).await.len(), 1);
    assert!(store.load_templates(MODEL).await.unwrap().is_empty());

    assert_eq!(store.delete_model("no-such-model").await.unwrap(), 0);
    assert_eq!(store.delete_model(OTHER_MODEL).await.unwrap(), 2);
    assert_eq!(store.models().await.unwrap(), vec![]);
    assert_eq!(store.subject(G, "alice", OTHER_MODEL).await.unwrap(), None);
}

async fn load_templates_in_id_order(db: Db) {
    let store = db.store;
    let mut enrolled = Vec::new();
    // Interleaved subjects across batches and models.
    for batch in 0..4u64 {
        let items = [
            dorsal(&format!("s{}", 3 - batch), 10 * batch),
            palmar("shared", 10 * batch + 1),
            dorsal(&format!("s{batch}"), 10 * batch + 2),
        ];
        let outcomes = store.enroll(MODEL, &items).await.unwrap();
        store.enroll(OTHER_MODEL, &items[..1]).await.unwrap();
        enrolled.extend(items.into_iter().zip(outcomes));
    }
    let loaded = store.load_templates(MODEL).await.unwrap();
    assert_eq!(loaded.len(), enrolled.len());
    for (record, (item, outcome)) in loaded.iter().zip(&enrolled) {
        assert_eq!(record.template_id, outcome.template_id);
        assert_eq!(record.subject_id, item.subject_id);
        assert_eq!(record.aspect, item.aspect);
        assert_eq!(record.side, item.side);
        assert_eq!(record.image_sha256, item.image_sha256);
        assert_eq!(bits(&record.embedding), bits(&item.embedding));
    }
    assert!(loaded
        .windows(2)
        .all(|w| w[0].template_id < w[1].template_id));
    assert_eq!(store.load_templates(OTHER_MODEL).await.unwrap().len(), 4);
    assert!(store
        .load_templates("no-such-model")
        .await
        .unwrap()
        .is_empty());
}

async fn mixed_dimensions_on_disk_are_corrupt(db: Db) {
    let store = db.store;
    store.enroll(MODEL, &[dorsal("alice", 1)]).await.unwrap();
    // What the store refuses to write, written behind its back.
    let raw = raw_pool(&db.url).await;
    sqlx::query(
        "INSERT INTO templates \
         (gallery, subject_id, model_id, aspect, side, image_sha256, embedding, created_at_ms) \
         VALUES ($1, $2, $3, 1, 0, $4, $5, 0)",
    )
    .bind(G)
    .bind("alice")
    .bind(MODEL)
    .bind(sha(2))
    .bind(vec![0u8; 4 * (DIM + 1)])
    .execute(&raw)
    .await
    .unwrap();
    raw.close().await;
    for result in [
        store.load_templates(MODEL).await,
        store.subject(G, "alice", MODEL).await.map(|s| s.unwrap()),
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        assert!(
            err.to_string().contains(&format!("{} values", DIM + 1)),
            "{err}"
        );
    }
}

async fn concurrent_enrollments_agree(db: Db) {
    let store = db.store;
    let tasks: Vec<_> = (0..8u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .enroll(
                        MODEL,
                        &[dorsal("shared", 1), dorsal(&format!("own-{i}"), 10 + i)],
                    )
                    .await
            })
        })
        .collect();
    let mut shared = Vec::new();
    for task in tasks {
        let outcomes = task.await.unwrap().expect("concurrent enroll");
        assert!(outcomes[1].created);
        shared.push(outcomes[0].clone());
    }
    assert_eq!(shared.iter().filter(|o| o.created).count(), 1, "{shared:?}");
    assert!(shared
        .iter()
        .all(|o| o.template_id == shared[0].template_id));
    assert_eq!(store.load_templates(MODEL).await.unwrap().len(), 9);
}

async fn ping_and_backend_name(db: Db) {
    db.store.ping().await.unwrap();
    let expected = if db.url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    assert_eq!(db.store.backend(), expected);
    let debug = format!("{:?}", db.store);
    assert!(
        !debug.contains("hm_test_") && !debug.contains("templates.db"),
        "{debug}"
    );
}

// ---------------------------------------------------------------------------------------------
// Connecting: what is not there, and what SQLite gets set up with

#[tokio::test]
async fn postgres_on_a_closed_port_is_unavailable_quickly() {
    let started = Instant::now();
    let err = TemplateStore::connect("postgres://hm:s3cret@127.0.0.1:1/test?password=s3cret", 2)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("postgres://hm@127.0.0.1:1/test"),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
}

#[tokio::test]
async fn sqlite_under_a_regular_file_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, b"").unwrap();
    let url = format!("sqlite://{}/templates.db", file.display());
    let err = TemplateStore::connect(&url, 2).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("not-a-folder"), "{err}");
}

#[tokio::test]
async fn sqlite_file_is_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/templates.db", dir.path().display());
    let store = TemplateStore::connect(&url, 2).await.unwrap();
    let raw = raw_pool(&url).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    raw.close().await;
    store.close().await;
}

#[tokio::test]
async fn unknown_schemes_are_refused() {
    let err = TemplateStore::connect("mysql://db/hm", 2)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
