//! Admission and batching in front of the one `EmbeddingSession`: requests that arrive
//! together are embedded together (up to `max_batch` images per session call), on a
//! dedicated OS thread so inference never blocks the async reactor. A full queue refuses
//! new work at once instead of letting latency grow without bound.

use std::sync::Arc;
use std::time::{Duration, Instant};

use image::RgbImage;
use ndarray::Array2;
use tokio::sync::{mpsc, oneshot};

use super::metadata::ArtefactMetadata;
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
    /// Starts the worker thread; it stops when the last `EmbedQueue` clone is dropped.
    pub fn start(session: EmbeddingSession, max_batch: usize, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let metadata = Arc::new(session.metadata().clone());
        let provider = session.provider();
        std::thread::Builder::new()
            .name("embed-worker".into())
            .spawn(move || worker(session, rx, max_batch.max(1)))
            .expect("spawning the embedding worker thread");
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

    /// Requests waiting for the worker (not those in the batch it is running).
    pub fn depth(&self) -> usize {
        self.capacity.max(1) - self.tx.capacity()
    }

    /// Whether the worker thread is still taking jobs.
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

fn worker(mut session: EmbeddingSession, mut rx: mpsc::Receiver<Job>, max_batch: usize) {
    let mut pending: Option<Job> = None;
    loop {
        let first = match pending.take() {
            Some(job) => job,
            None => match rx.blocking_recv() {
                Some(job) => job,
                None => return,
            },
        };
        // Gather whatever else is already waiting, up to the batch limit. A request larger
        // than the limit runs alone (in chunks).
        let mut jobs = vec![first];
        let mut gathered = jobs[0].crops.len();
        while gathered < max_batch {
            match rx.try_recv() {
                Ok(job) if gathered + job.crops.len() <= max_batch => {
                    gathered += job.crops.len();
                    jobs.push(job);
                }
                Ok(job) => {
                    pending = Some(job);
                    break;
                }
                Err(_) => break,
            }
        }
        // A request whose caller has gone (deadline, cancellation) is not embedded.
        jobs.retain(|job| !job.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let images: usize = jobs.iter().map(|j| j.crops.len()).sum();
        let started = Instant::now();
        // A panic inside one batch fails that batch's requests, not the worker: the session
        // holds no state between calls that a panic could leave half-changed.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_batch(&mut session, &jobs, max_batch)
        }))
        .unwrap_or_else(|panic| Err(EmbedError::Panicked(panic_message(&panic))));
        let inference = started.elapsed();
        match result {
            Ok(all) => {
                let mut rows = all.into_iter();
                let dim = session.metadata().embedding_dim;
                for job in jobs {
                    let n = job.crops.len();
                    let mine: Vec<_> = rows.by_ref().take(n).collect();
                    let timing = EmbedTiming {
                        queued: started - job.submitted,
                        inference,
                        batch_images: images,
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
