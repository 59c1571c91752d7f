//! Resource samples of a local process (the server under load, for a soak): its resident
//! memory and open file descriptors, read from `/proc/PID` every few seconds, written as a
//! CSV and plotted. A leak shows as a line that keeps rising after warm-up.

use std::path::Path;
use std::time::{Duration, Instant};

use handmatch_core::report::plot::{line_chart, Series};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ProcessSample {
    /// Seconds since sampling started.
    pub t_s: f64,
    pub rss_bytes: u64,
    pub open_fds: u64,
}

/// Resident bytes and open descriptors of `pid` now.
pub fn read(pid: u32) -> std::io::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| std::io::Error::other(format!("/proc/{pid}/status has no VmRSS")))?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
    Ok((rss_kib * 1024, fds))
}

/// Samples until `stop` is sent (or dropped), then returns the samples; the first sample is
/// taken at once and the last when stopped.
pub struct Sampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Vec<ProcessSample>>,
}

impl Sampler {
    pub fn start(pid: u32, every: Duration) -> Self {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(every);
            loop {
                let last = tokio::select! {
                    _ = tick.tick() => false,
                    _ = &mut stopped => true,
                };
                match read(pid) {
                    Ok((rss_bytes, open_fds)) => samples.push(ProcessSample {
                        t_s: start.elapsed().as_secs_f64(),
                        rss_bytes,
                        open_fds,
                    }),
                    Err(e) => tracing::warn!("sampling process {pid}: {e}"),
                }
                if last {
                    return samples;
                }
            }
        });
        Self { stop, task }
    }

    pub async fn finish(self) -> anyhow::Result<Vec<ProcessSample>> {
        let _ = self.stop.send(());
        Ok(self.task.await?)
    }
}

/// `STEM.csv` (t_s, rss_mib, open_fds), `STEM-rss.png` and `STEM-fds.png`.
pub fn write(stem: &Path, samples: &[ProcessSample]) -> anyhow::Result<()> {
    let mut csv = String::from("t_s,rss_mib,open_fds\n");
    for s in samples {
        csv += &format!("{:.1},{:.1},{}\n", s.t_s, mib(s.rss_bytes), s.open_fds);
    }
    std::fs::write(stem.with_extension("csv"), csv)?;
    let named = |suffix: &str| {
        let name = stem.file_name().unwrap_or_default().to_string_lossy();
        stem.with_file_name(format!("{name}-{suffix}.png"))
    };
    let series = |name: &str, f: &dyn Fn(&ProcessSample) -> f64| Series {
        name: name.into(),
        points: samples.iter().map(|s| (s.t_s, f(s))).collect(),
    };
    line_chart(
        &named("rss"),
        "Server resident memory under load",
        "seconds",
        "MiB",
        &[series("RSS", &|s| mib(s.rss_bytes))],
    )?;
    line_chart(
        &named("fds"),
        "Server open file descriptors under load",
        "seconds",
        "descriptors",
        &[series("open fds", &|s| s.open_fds as f64)],
    )?;
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn samples_this_process_and_writes_csv_and_plots() {
        let sampler = Sampler::start(std::process::id(), Duration::from_millis(20));
        tokio::time::sleep(Duration::from_millis(90)).await;
        let samples = sampler.finish().await.unwrap();
        assert!(samples.len() >= 3, "{samples:?}");
        assert!(samples
            .iter()
            .all(|s| s.rss_bytes > 1 << 20 && s.open_fds >= 3));
        assert!(samples.windows(2).all(|w| w[0].t_s <= w[1].t_s));
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("server");
        write(&stem, &samples).unwrap();
        let csv = std::fs::read_to_string(dir.path().join("server.csv")).unwrap();
        assert_eq!(csv.lines().count(), samples.len() + 1);
        for png in ["server-rss.png", "server-fds.png"] {
            assert!(std::fs::metadata(dir.path().join(png)).unwrap().len() > 1000);
        }
    }
}
