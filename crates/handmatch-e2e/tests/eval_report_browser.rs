//! report.html in a real browser (headless Chromium, Debian's `chromium` package): picking a
//! query shows ten palm candidates with the correct subject marked, from disk, no server.

mod common;

use std::process::Command;

use common::Backend;
use handmatch_core::hand_image::HandImage;

fn chromium() -> String {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c.to_string();
        }
    }
    panic!("this test needs headless Chromium: apt-get install chromium (.ci/run installs it)");
}

fn dump_dom(browser: &str, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picking_a_query_shows_ten_candidates_with_the_correct_one_marked() {
    let browser = chromium();
    let data = common::hands();
    let server = common::start(&common::model(0), &common::database(Backend::Sqlite).await).await;
    let mut client = common::eval_client(&server).await;
    let images: Vec<&HandImage> = data.images.iter().collect();
    let results = handmatch_eval::run::run(
        &mut client,
        &images,
        &handmatch_eval::run::RunOptions {
            gallery: String::new(),
            consent_reference: String::new(),
            concurrency: 4,
            non_mated: 0.0,
            seed: 0,
            thresholds: Vec::new(),
        },
    )
    .await
    .unwrap();
    server.shutdown().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(
        &page,
        handmatch_eval::html_report::render(&results, &images).unwrap(),
    )
    .unwrap();

    // A query whose subject is in its top 10, and one whose subject is not (if any).
    let inside = results
        .image_queries
        .iter()
        .position(|q| q.rank.is_some_and(|r| r <= 10))
        .unwrap();
    let dom = dump_dom(&browser, &format!("file://{}#q={inside}", page.display()));
    let cards = dom.matches("class=\"card").count();
    assert_eq!(cards, 10, "candidate cards shown");
    let subject = &results.image_queries[inside].subject;
    let marked: Vec<&str> = dom
        .match_indices("class=\"card correct\"")
        .map(|(i, _)| &dom[i..i + 80])
        .collect();
    assert_eq!(marked.len(), 1, "exactly one card is marked correct");
    assert!(
        marked[0].contains(&format!("data-subject=\"{subject}\"")),
        "{}",
        marked[0]
    );
    if let Some(outside) = results
        .image_queries
        .iter()
        .position(|q| q.rank.is_none_or(|r| r > 10))
    {
        let dom = dump_dom(&browser, &format!("file://{}#q={outside}", page.display()));
        assert_eq!(dom.matches("class=\"card").count(), 10);
        assert_eq!(dom.matches("class=\"card correct\"").count(), 0);
    }
}
