//! Admission and batching in front of the embedding sessions: requests that arrive
//! together are embedded together (up to `max_batch` images per session call), on
//! dedicated OS threads so inference never blocks the async reactor. A full queue refuses
//! new work at once instead of letting latency grow without bound.
//!
//! Each worker thread of an `EmbeddingPool` takes the next batch and runs it in its own
//! session; a batch that finds no other work in the server runs in the pool's solo
//! session over all cores instead (see `pool`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image::RgbImage;
use ndarray::Array2;
use tokio::sync::{mpsc, oneshot};

use super::metadata::ArtefactMetadata;
use super::pool::EmbeddingPool;
use super::runtime::ExecutionProviderKind;
use super::session::{EmbedError, EmbeddingSession};
use crate::hand::AlignError;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the embedding queue is full ({capacity} requests waiting); retry later")]
    Overloaded { capacity: usize },
    #[error("the embedding worker has stopped")]
    Stopped,
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

/// What the worker measured for one request.
#[derive(Debug, Clone, Copy)]
pub struct EmbedTiming {
    /// From submission to the start of the batch that carried it.
    pub queued: Duration,
    /// The session call of that batch.
    pub inference: Duration,
    /// How many images that batch held in all.
    pub batch_images: usize,
    /// Whether that batch ran alone in the pool's solo session (over all cores).
    pub solo: bool,
}

struct Job {
    crops: Vec<RgbImage>,
    submitted: Instant,
    reply: oneshot::Sender<Result<(Array2<f32>, EmbedTiming), EmbedError>>,
}

#[derive(Clone)]
pub struct EmbedQueue {
    tx: mpsc::Sender<Job>,
    capacity: usize,
    metadata: Arc<ArtefactMetadata>,
    provider: ExecutionProviderKind,
}

impl EmbedQueue {
    /// Starts one worker thread per session of `pool`; they stop when the last
    /// `EmbedQueue` clone is dropped.
    pub fn start(pool: EmbeddingPool, max_batch: usize, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let metadata = Arc::new(pool.metadata().clone());
        let provider = pool.provider();
        let shared = Arc::new(Shared {
            inbox: Mutex::new(Inbox { rx, pending: None }),
            running: AtomicUsize::new(0),
            solo: pool.solo.map(Mutex::new),
            max_batch: max_batch.max(1),
        });
        for (i, session) in pool.workers.into_iter().enumerate() {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("embed-worker-{i}"))
                .spawn(move || worker(session, &shared))
                .expect("spawning an embedding worker thread");
        }
        Self {
            tx,
            capacity,
            metadata,
            provider,
        }
    }

    /// The same metadata, for tasks that outlive a borrow (image preparation).
    pub fn shared_metadata(&self) -> Arc<ArtefactMetadata> {
        self.metadata.clone()
    }

    pub fn metadata(&self) -> &ArtefactMetadata {
        &self.metadata
    }

    pub fn provider(&self) -> ExecutionProviderKind {
        self.provider
    }

    /// Requests waiting for a worker (not those in the batches running).
    pub fn depth(&self) -> usize {
        self.capacity.max(1) - self.tx.capacity()
    }

    /// Whether the worker threads are still taking jobs.
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Embeds model inputs (`preprocess::model_input`); one row per input, in order. An
    /// input without a hand fails the request with `EmbedError::NoHand` naming it.
    pub async fn embed(
        &self,
        crops: Vec<RgbImage>,
    ) -> Result<(Array2<f32>, EmbedTiming), QueueError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            crops,
            submitted: Instant::now(),
            reply,
        };
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => QueueError::Overloaded {
                capacity: self.capacity,
            },
            mpsc::error::TrySendError::Closed(_) => QueueError::Stopped,
        })?;
        Ok(rx.await.map_err(|_| QueueError::Stopped)??)
    }
}

/// What the workers share: the queue's receiving end, how many batches are running, and
/// the solo session.
struct Shared {
    inbox: Mutex<Inbox>,
    running: AtomicUsize,
    solo: Option<Mutex<EmbeddingSession>>,
    max_batch: usize,
}

struct Inbox {
    rx: mpsc::Receiver<Job>,
    /// A job taken that did not fit the previous batch; it starts the next one.
    pending: Option<Job>,
}

impl Inbox {
    /// Waits for a job, then gathers whatever else is already waiting, up to `max_batch`
    /// images. A request larger than the limit runs alone (in chunks). `None` once the
    /// queue is closed and empty.
    fn next_batch(&mut self, max_batch: usize) -> Option<Vec<Job>> {
        let first = match self.pending.take() {
            Some(job) => job,
            None => self.rx.blocking_recv()?,
        };
        let mut gathered = first.crops.len();
        let mut jobs = vec![first];
        while gathered < max_batch {
            match self.rx.try_recv() {
                Ok(job) if gathered + job.crops.len() <= max_batch => {
                    gathered += job.crops.len();
                    jobs.push(job);
                }
                Ok(job) => {
                    self.pending = Some(job);
                    break;
                }
                Err(_) => break,
            }
        }
        Some(jobs)
    }

    fn is_empty(&self) -> bool {
        self.pending.is_none() && self.rx.is_empty()
    }
}

fn worker(mut session: EmbeddingSession, shared: &Shared) {
    let dim = session.metadata().embedding_dim;
    loop {
        let (mut jobs, alone) = {
            let mut inbox = shared.inbox.lock().unwrap_or_else(|p| p.into_inner());
            let Some(jobs) = inbox.next_batch(shared.max_batch) else {
                return;
            };
            let others = shared.running.fetch_add(1, Ordering::SeqCst);
            (jobs, others == 0 && inbox.is_empty())
        };
        // A request whose caller has gone (deadline, cancellation) is not embedded.
        jobs.retain(|job| !job.reply.is_closed());
        let solo = shared.solo.as_ref().filter(|_| alone);
        let batch = match solo {
            // Only a batch that started with nothing else running takes the solo session,
            // so no one else holds it; a poisoned lock only means an earlier batch panicked,
            // and the session holds no state between calls.
            Some(solo) => {
                let mut solo = solo.lock().unwrap_or_else(|p| p.into_inner());
                embed_batch(&mut solo, &jobs, shared.max_batch)
            }
            None => embed_batch(&mut session, &jobs, shared.max_batch),
        };
        // Done before answering: an answer wakes the caller, whose next request must find
        // this batch finished, or it would not count as alone.
        shared.running.fetch_sub(1, Ordering::SeqCst);
        answer(jobs, batch, dim, solo.is_some());
    }
}

/// One batch's rows (or its error) and when and how long it ran.
struct BatchOutcome {
    rows: Result<Vec<Row>, EmbedError>,
    started: Instant,
    inference: Duration,
}

fn embed_batch(session: &mut EmbeddingSession, jobs: &[Job], max_batch: usize) -> BatchOutcome {
    let started = Instant::now();
    // A panic inside one batch fails that batch's requests, not the worker: the session
    // holds no state between calls that a panic could leave half-changed.
    let rows = if jobs.is_empty() {
        Ok(Vec::new())
    } else {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_batch(session, jobs, max_batch)
        }))
        .unwrap_or_else(|panic| Err(EmbedError::Panicked(panic_message(&panic))))
    };
    BatchOutcome {
        rows,
        started,
        inference: started.elapsed(),
    }
}

/// Sends each request of a batch its rows, or the batch's error.
fn answer(jobs: Vec<Job>, batch: BatchOutcome, dim: usize, solo: bool) {
    let images: usize = jobs.iter().map(|j| j.crops.len()).sum();
    match batch.rows {
        Ok(all) => {
            let mut rows = all.into_iter();
            for job in jobs {
                let n = job.crops.len();
                let mine: Vec<_> = rows.by_ref().take(n).collect();
                let timing = EmbedTiming {
                    queued: batch.started - job.submitted,
                    inference: batch.inference,
                    batch_images: images,
                    solo,
                };
                let _ = job.reply.send(job_result(mine, dim).map(|e| (e, timing)));
            }
        }
        Err(e) => {
            tracing::error!("embedding batch of {images} images failed: {e}");
            for job in jobs {
                let _ = job
                    .reply
                    .send(Err(EmbedError::Inference(ort::Error::new(e.to_string()))));
            }
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

type Row = Result<Vec<f32>, AlignError>;

fn run_batch(
    session: &mut EmbeddingSession,
    jobs: &[Job],
    max_batch: usize,
) -> Result<Vec<Row>, EmbedError> {
    let inputs: Vec<&RgbImage> = jobs.iter().flat_map(|j| j.crops.iter()).collect();
    let mut out = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(max_batch) {
        out.extend(session.embed_inputs(chunk)?);
    }
    Ok(out)
}

/// One request's rows, or the first of its images that had no hand.
fn job_result(rows: Vec<Row>, dim: usize) -> Result<Array2<f32>, EmbedError> {
    let mut flat = Vec::with_capacity(rows.len() * dim);
    let n = rows.len();
    for (index, row) in rows.into_iter().enumerate() {
        flat.extend(row.map_err(|source| EmbedError::NoHand { index, source })?);
    }
    Ok(Array2::from_shape_vec((n, dim), flat).expect("rows of the embedding dimension"))
}
