//! A bounded load generator: C concurrent workers send a weighted mix of Identify, Enroll
//! and Delete to one server for a fixed time (and at most a fixed number of requests), then
//! report throughput, latency percentiles per RPC and the count of each status code.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::client::Client;
use handmatch_proto::v1 as pb;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rpc {
    Identify,
    Enroll,
    Delete,
}

/// `identify=8,enroll=1,delete=1`
#[derive(Debug, Clone, PartialEq)]
pub struct Mix(pub Vec<(Rpc, u32)>);

impl FromStr for Mix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected NAME=WEIGHT"))?;
            let rpc = match name.trim() {
                "identify" => Rpc::Identify,
                "enroll" => Rpc::Enroll,
                "delete" => Rpc::Delete,
                other => return Err(format!("unknown RPC `{other}` (identify, enroll, delete)")),
            };
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("`{part}`: weight is not a whole number"))?;
            out.push((rpc, weight));
        }
        if out.iter().map(|(_, w)| w).sum::<u32>() == 0 {
            return Err("the mix needs at least one positive weight".into());
        }
        Ok(Mix(out))
    }
}

impl Mix {
    fn pick(&self, rng: &mut impl Rng) -> Rpc {
        let total: u32 = self.0.iter().map(|(_, w)| w).sum();
        let mut x = rng.random_range(0..total);
        for (rpc, w) in &self.0 {
            if x < *w {
                return *rpc;
            }
            x -= w;
        }
        unreachable!("weights add up to the total")
    }
}

pub struct LoadConfig {
    /// The gallery the requests use ("" for the default).
    pub gallery: String,
    /// Sent with every enrolment ("" for none).
    pub consent_reference: String,
    pub concurrency: usize,
    pub duration: Duration,
    /// A hard cap on requests in all, so a run always ends.
    pub max_requests: u64,
    pub mix: Mix,
    pub seed: u64,
}

/// Images the workers send: query images (Identify) and gallery images (Enroll).
pub struct LoadImages {
    pub queries: Vec<pb::Image>,
    pub gallery: Vec<pb::Image>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RpcStats {
    pub requests: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// gRPC status name → count.
    pub codes: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    pub concurrency: usize,
    pub seconds: f64,
    pub requests: u64,
    pub per_second: f64,
    pub rpcs: BTreeMap<Rpc, RpcStats>,
}

struct Sample {
    rpc: Rpc,
    latency: Duration,
    code: tonic::Code,
}

pub async fn run(
    client: Client,
    images: Arc<LoadImages>,
    cfg: &LoadConfig,
) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(cfg.concurrency > 0, "concurrency must be positive");
    anyhow::ensure!(!images.queries.is_empty(), "no query images");
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let budget = Arc::new(AtomicU64::new(cfg.max_requests));
    let workers: Vec<_> = (0..cfg.concurrency)
        .map(|id| {
            let worker = Worker {
                id,
                client: client.clone(),
                images: images.clone(),
                mix: cfg.mix.clone(),
                gallery: cfg.gallery.clone(),
                consent_reference: cfg.consent_reference.clone(),
                budget: budget.clone(),
                rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ (id as u64) << 32),
                mine: Vec::new(),
                enrolled: 0,
            };
            tokio::spawn(worker.run(deadline))
        })
        .collect();
    let mut samples = Vec::new();
    for w in workers {
        samples.extend(w.await?);
    }
    let seconds = start
        .elapsed()
        .as_secs_f64()
        .min(cfg.duration.as_secs_f64().max(1e-9))
        .max(1e-9);
    Ok(report(samples, cfg.concurrency, seconds))
}

/// One request loop: its own client, generator and the subjects it enrolled (so Delete only
/// removes what this worker made, and everything left is removed at the end).
struct Worker {
    id: usize,
    client: Client,
    images: Arc<LoadImages>,
    mix: Mix,
    gallery: String,
    consent_reference: String,
    /// Requests left for all workers together.
    budget: Arc<AtomicU64>,
    rng: ChaCha8Rng,
    mine: Vec<String>,
    enrolled: u64,
}

impl Worker {
    async fn run(mut self, deadline: Instant) -> Vec<Sample> {
        let mut samples = Vec::new();
        while Instant::now() < deadline && self.take_one() {
            let rpc = match self.mix.pick(&mut self.rng) {
                Rpc::Delete if self.mine.is_empty() => Rpc::Enroll,
                Rpc::Enroll if self.images.gallery.is_empty() => Rpc::Identify,
                other => other,
            };
            let t = Instant::now();
            let code = self.call(rpc).await;
            samples.push(Sample {
                rpc,
                latency: t.elapsed(),
                code,
            });
        }
        self.leave_gallery_as_found().await;
        samples
    }

    fn take_one(&self) -> bool {
        self.budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_ok()
    }

    async fn call(&mut self, rpc: Rpc) -> tonic::Code {
        match rpc {
            Rpc::Identify => {
                let queries = &self.images.queries;
                let img = queries[self.rng.random_range(0..queries.len())].clone();
                let req = pb::IdentifyRequest {
                    images: vec![img],
                    top_k: Some(10),
                    gallery_aspect: 0,
                    min_score: None,
                    operating_point: 0,
                    gallery: self.gallery.clone(),
                };
                code_of(self.client.identify(req).await)
            }
            Rpc::Enroll => {
                self.enrolled += 1;
                let subject = format!("load-{}-{}", self.id, self.enrolled);
                let gallery = &self.images.gallery;
                let img = gallery[self.rng.random_range(0..gallery.len())].clone();
                let r = self
                    .client
                    .enroll(pb::EnrollRequest {
                        subject_id: subject.clone(),
                        images: vec![img],
                        gallery: self.gallery.clone(),
                        consent_reference: self.consent_reference.clone(),
                    })
                    .await;
                if r.is_ok() {
                    self.mine.push(subject);
                }
                code_of(r)
            }
            Rpc::Delete => {
                let subject = self
                    .mine
                    .swap_remove(self.rng.random_range(0..self.mine.len()));
                let req = pb::DeleteSubjectRequest {
                    subject_id: subject,
                    gallery: self.gallery.clone(),
                };
                code_of(self.client.delete_subject(req).await)
            }
        }
    }

    async fn leave_gallery_as_found(&mut self) {
        for subject in std::mem::take(&mut self.mine) {
            let req = pb::DeleteSubjectRequest {
                subject_id: subject,
                gallery: self.gallery.clone(),
            };
            let _ = self.client.delete_subject(req).await;
        }
    }
}

fn code_of<T>(r: Result<T, tonic::Status>) -> tonic::Code {
    match r {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn report(samples: Vec<Sample>, concurrency: usize, seconds: f64) -> LoadReport {
    let mut by_rpc: BTreeMap<Rpc, Vec<&Sample>> = BTreeMap::new();
    for s in &samples {
        by_rpc.entry(s.rpc).or_default().push(s);
    }
    let rpcs = by_rpc
        .into_iter()
        .map(|(rpc, list)| {
            let mut ms: Vec<f64> = list.iter().map(|s| s.latency.as_secs_f64() * 1e3).collect();
            ms.sort_by(|a, b| a.total_cmp(b));
            let mut codes = BTreeMap::new();
            for s in &list {
                *codes.entry(format!("{:?}", s.code)).or_insert(0) += 1;
            }
            let stats = RpcStats {
                requests: list.len() as u64,
                per_second: list.len() as f64 / seconds,
                p50_ms: percentile(&ms, 0.50),
                p95_ms: percentile(&ms, 0.95),
                p99_ms: percentile(&ms, 0.99),
                max_ms: ms.last().copied().unwrap_or(0.0),
                codes,
            };
            (rpc, stats)
        })
        .collect();
    LoadReport {
        concurrency,
        seconds,
        requests: samples.len() as u64,
        per_second: samples.len() as f64 / seconds,
        rpcs,
    }
}

impl LoadReport {
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} requests in {:.1} s at concurrency {}: {:.2} req/s\n\n| RPC | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | codes |\n|---|---:|---:|---:|---:|---:|---:|---|\n",
            self.requests, self.seconds, self.concurrency, self.per_second
        );
        for (rpc, s) in &self.rpcs {
            let codes = s
                .codes
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            out += &format!(
                "| {rpc:?} | {} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} | {codes} |\n",
                s.requests, s.per_second, s.p50_ms, s.p95_ms, s.p99_ms, s.max_ms
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_and_picks_by_weight() {
        let mix: Mix = "identify=8,enroll=1,delete=1".parse().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut n = BTreeMap::new();
        for _ in 0..10_000 {
            *n.entry(mix.pick(&mut rng)).or_insert(0) += 1;
        }
        assert!((7_700..8_300).contains(&n[&Rpc::Identify]), "{n:?}");
        assert!("identify=x".parse::<Mix>().is_err());
        assert!("search=1"
            .parse::<Mix>()
            .unwrap_err()
            .contains("unknown RPC"));
        assert!("identify=0".parse::<Mix>().is_err());
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
    }
}
