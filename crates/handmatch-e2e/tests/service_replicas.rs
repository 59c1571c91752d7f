//! Several replicas on one PostgreSQL database stay coherent through the change feed:
//! what one enrols the others find, what one deletes the others forget and never bring
//! back, a replica that was away catches up (or reloads when the feed was pruned past
//! it), one that cannot read the feed stops serving past its staleness bound, polling
//! alone suffices without notifications, and racing writes end alike everywhere and in
//! the database.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::health::{status, wait_for};
use common::outage::Outage;
use common::replicas::{
    delete, enroll, eventually, info, replica, settled, try_enroll, view, Replica,
};
use common::Backend;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

const WITHIN: Duration = Duration::from_secs(1);

async fn three(db: &str) -> (Replica, Replica, Replica) {
    (
        replica(db, |_| {}).await,
        replica(db, |_| {}).await,
        replica(db, |_| {}).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_replica_enrols_or_deletes_the_others_see_within_a_second() {
    let db = common::database(Backend::Postgres).await;
    let (mut a, mut b, mut c) = three(&db).await;

    enroll(&mut a.client, "alice", 0).await;
    for r in [&mut b, &mut c] {
        let took = eventually(&mut r.client, WITHIN, "alice enrolled through A", |v| {
            v.contains_key("alice")
        })
        .await;
        eprintln!("enrolment visible after {took:?}");
    }

    delete(&mut b.client, "alice").await;
    for r in [&mut a, &mut c] {
        let took = eventually(&mut r.client, WITHIN, "alice deleted through B", |v| {
            !v.contains_key("alice")
        })
        .await;
        eprintln!("deletion visible after {took:?}");
    }

    // Never back: more changes flow (bob through C) while every replica is watched for
    // several poll intervals.
    enroll(&mut c.client, "bob", 1).await;
    let watch_until = Instant::now() + Duration::from_secs(3);
    let mut bob_everywhere = false;
    while Instant::now() < watch_until || !bob_everywhere {
        bob_everywhere = true;
        for r in [&mut a, &mut b, &mut c] {
            let seen = view(&mut r.client).await;
            assert!(!seen.contains_key("alice"), "alice came back: {seen:?}");
            bob_everywhere &= seen.contains_key("bob");
        }
        assert!(Instant::now() < watch_until + WITHIN, "bob not everywhere");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    settled(&db, &mut [&mut a, &mut b, &mut c], WITHIN).await;
    let head = common::replicas::feed_head(&db).await;
    for r in [&mut a, &mut b, &mut c] {
        let i = info(&mut r.client).await;
        assert_eq!((i.applied_change_seq, i.pending_changes), (head, 0));
        assert!(i.staleness_ms < 5_000, "staleness {} ms", i.staleness_ms);
    }
    for r in [a, b, c] {
        r.server.shutdown().await.unwrap();
    }
}

/// 100 changes: 60 enrolments, then 40 of those subjects deleted.
async fn hundred_changes(through: &mut Replica, tag: &str) {
    for i in 0..60 {
        enroll(&mut through.client, &format!("{tag}-{i}"), i % 7).await;
    }
    for i in 0..40 {
        delete(&mut through.client, &format!("{tag}-{i}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_was_stopped_or_cut_off_catches_up() {
    let db = common::database(Backend::Postgres).await;
    let mut a = replica(&db, |_| {}).await;
    let c = replica(&db, |_| {}).await;
    enroll(&mut a.client, "before", 0).await;
    c.server.shutdown().await.unwrap();
    hundred_changes(&mut a, "stopped").await;
    let mut c = replica(&db, |_| {}).await;
    assert_eq!(view(&mut c.client).await, view(&mut a.client).await);
    assert_eq!(view(&mut c.client).await.len(), 21);
    c.server.shutdown().await.unwrap();

    // Cut off from the database while running: it keeps its position and, once the
    // database is back, applies the changes it missed from there.
    let mut outage = Outage::new().await;
    outage.up().await;
    let cut_url = outage.url_of(&db);
    let mut c = replica(&cut_url, |_| {}).await;
    let position = info(&mut c.client).await.applied_change_seq;
    outage.down();
    hundred_changes(&mut a, "cut").await;
    let head = common::replicas::feed_head(&db).await;
    assert_eq!(head - position, 100, "one feed row per change");
    assert_eq!(
        info(&mut c.client).await.applied_change_seq,
        position,
        "nothing applied while cut off"
    );
    outage.up().await;
    settled(&db, &mut [&mut c], Duration::from_secs(20)).await;
    assert_eq!(view(&mut c.client).await, view(&mut a.client).await);

    // Cut off past the feed's retention: the rows it missed are pruned, so it reloads.
    outage.down();
    hundred_changes(&mut a, "pruned").await;
    let store = handmatch_server::store::TemplateStore::connect(&db, 1)
        .await
        .unwrap();
    let pruned = store.prune_changes(Duration::ZERO).await.unwrap();
    assert!(pruned >= 100, "pruned {pruned}");
    outage.up().await;
    settled(&db, &mut [&mut c], Duration::from_secs(20)).await;
    let (seen_a, seen_c) = (view(&mut a.client).await, view(&mut c.client).await);
    assert_eq!(seen_c, seen_a);
    assert_eq!(seen_c.len(), 1 + 20 * 3, "before, and 20 of each 60");
    c.server.shutdown().await.unwrap();
    a.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_cannot_read_the_feed_stops_serving_past_its_staleness_bound() {
    let db = common::database(Backend::Postgres).await;
    let mut outage = Outage::new().await;
    outage.up().await;
    let cut_url = outage.url_of(&db);
    let mut b = replica(&cut_url, |args| args.max_staleness_seconds = 2).await;
    let channel = Channel::from_shared(format!("http://{}", b.server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let api = "handmatch.v1.HandMatch";
    assert_eq!(
        status(channel.clone(), api).await,
        ServingStatus::Serving as i32
    );

    outage.down();
    wait_for(
        &channel,
        api,
        ServingStatus::NotServing,
        Duration::from_secs(10),
    )
    .await;
    let stale = info(&mut b.client).await.staleness_ms;
    assert!(stale > 2_000, "NOT_SERVING at a staleness of {stale} ms");

    outage.up().await;
    wait_for(
        &channel,
        api,
        ServingStatus::Serving,
        Duration::from_secs(15),
    )
    .await;
    assert!(info(&mut b.client).await.staleness_ms < 2_000);
    b.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_alone_keeps_a_replica_coherent() {
    let db = common::database(Backend::Postgres).await;
    let mut a = replica(&db, |_| {}).await;
    // The test hook: B never listens for notifications, and polls every 250 ms.
    let mut b = replica(&db, |args| {
        args.no_sync_notify = true;
        args.sync_interval_ms = 250;
    })
    .await;
    for round in 0..3 {
        let subject = format!("s{round}");
        enroll(&mut a.client, &subject, round).await;
        eventually(&mut b.client, WITHIN, "enrolment by polling", |v| {
            v.contains_key(&subject)
        })
        .await;
        delete(&mut a.client, &subject).await;
        eventually(&mut b.client, WITHIN, "deletion by polling", |v| {
            !v.contains_key(&subject)
        })
        .await;
    }
    a.server.shutdown().await.unwrap();
    b.server.shutdown().await.unwrap();
}

/// Subject → template count, as the database holds them.
async fn stored(db: &str) -> BTreeMap<String, i64> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(db).await.unwrap();
    sqlx::query_as::<_, (String, i64)>(
        "SELECT subject_id, COUNT(*) FROM templates GROUP BY subject_id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_enrolments_and_deletions_end_alike_on_every_replica_and_in_the_database() {
    let db = common::database(Backend::Postgres).await;
    let (mut a, mut b, mut c) = three(&db).await;
    let subjects = ["r0", "r1", "r2"];
    let mut writers = tokio::task::JoinSet::new();
    for (mut client, enrols) in [(a.client.clone(), true), (b.client.clone(), false)] {
        writers.spawn(async move {
            for round in 0..12 {
                for s in subjects {
                    if enrols {
                        // A concurrent deletion may make an enrolment retry-worthy.
                        let _ = try_enroll(&mut client, s, round % 5).await;
                    } else {
                        delete(&mut client, s).await;
                    }
                }
            }
        });
    }
    // C writes too: the same subjects, alternately.
    let mut c_client = c.client.clone();
    writers.spawn(async move {
        for round in 0..12 {
            let s = subjects[round % subjects.len()];
            if round % 2 == 0 {
                let _ = try_enroll(&mut c_client, s, 5 + round % 2).await;
            } else {
                delete(&mut c_client, s).await;
            }
        }
    });
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    settled(&db, &mut [&mut a, &mut b, &mut c], Duration::from_secs(5)).await;

    let truth = stored(&db).await;
    // A fresh replica loads the database: its scores are the truth's scores.
    let mut fresh = replica(&db, |_| {}).await;
    let expected = view(&mut fresh.client).await;
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        truth.keys().collect::<Vec<_>>()
    );
    for (name, r) in [("A", &mut a), ("B", &mut b), ("C", &mut c)] {
        let seen = view(&mut r.client).await;
        assert_eq!(
            seen.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "replica {name}'s subjects differ from the database's {truth:?}"
        );
        for (s, score) in &seen {
            assert!(
                (score - expected[s]).abs() <= 1e-6,
                "replica {name}: {s} scores {score}, the database's templates {}",
                expected[s]
            );
        }
        let templates = info(&mut r.client).await.gallery_templates as i64;
        assert_eq!(templates, truth.values().sum::<i64>(), "replica {name}");
    }
    for r in [a, b, c, fresh] {
        r.server.shutdown().await.unwrap();
    }
}
