//! How long a write through one replica takes to become visible on another, on one
//! PostgreSQL database (DATABASE_URL, default the local test server): from the moment
//! replica A has answered an Enroll (so the commit is done) until replica B's index shows
//! the subject (its GetInfo count, which reads the index B searches), and the same for
//! deletions. Once with B woken by notifications, once with B polling only (default 1 s).
//! Each write waits a random 0–1 s first, so writes fall at random phases of B's poll.
//!
//! `cargo bench -p handmatch-e2e --bench replica_propagation` (HANDMATCH_BENCH_WRITES,
//! default 100 per configuration).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::replicas::{delete, enroll, info, replica, Replica};
use common::Backend;

#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        sorted[((sorted.len() - 1) as f64 * q).round() as usize]
    }

    fn row(&self, what: &str) -> String {
        format!(
            "| {what} | {} | {:.1} | {:.1} | {:.1} |",
            self.0.len(),
            self.quantile(0.5).as_secs_f64() * 1e3,
            self.quantile(0.99).as_secs_f64() * 1e3,
            self.quantile(1.0).as_secs_f64() * 1e3
        )
    }
}

/// Waits until B's index holds `subjects` subjects; the time since `since`.
async fn visible(b: &mut Replica, subjects: u64, since: Instant) -> Duration {
    loop {
        if info(&mut b.client).await.gallery_subjects == subjects {
            return since.elapsed();
        }
        assert!(since.elapsed() < Duration::from_secs(30), "never visible");
        tokio::task::yield_now().await;
    }
}

async fn measure(db: &str, writes: usize, notifications: bool) -> (Samples, Samples) {
    let mut a = replica(db, |_| {}).await;
    let mut b = replica(db, |args| args.no_sync_notify = !notifications).await;
    let (mut enrolled, mut deleted) = (Samples::default(), Samples::default());
    for i in 0..writes {
        // Writes at random phases of B's poll: right after a visibility (just after B's
        // poll) every write would wait a whole interval.
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..1000))).await;
        enroll(&mut a.client, &format!("p{i}"), i % 7).await;
        let at = Instant::now();
        enrolled.0.push(visible(&mut b, 1, at).await);
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..1000))).await;
        delete(&mut a.client, &format!("p{i}")).await;
        let at = Instant::now();
        deleted.0.push(visible(&mut b, 0, at).await);
    }
    a.server.shutdown().await.unwrap();
    b.server.shutdown().await.unwrap();
    (enrolled, deleted)
}

fn main() {
    let writes: usize = std::env::var("HANDMATCH_BENCH_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let db = common::database(Backend::Postgres).await;
        println!("| replica B | writes | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|");
        for (notifications, label) in [(true, "LISTEN/NOTIFY"), (false, "polling, 1 s")] {
            let (enrolled, deleted) = measure(&db, writes, notifications).await;
            println!("{}", enrolled.row(&format!("{label}: enrolment visible")));
            println!("{}", deleted.row(&format!("{label}: deletion visible")));
        }
    });
}
