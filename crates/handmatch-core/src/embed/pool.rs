//! Several sessions of one artefact for the embedding queue, so that the cores serve
//! either one request fast or many requests at once, whichever is waiting.
//!
//! On a CPU, one graph run spread over all cores synchronises them at every operator;
//! measured on a 2-core AVX-512 VNNI machine (int8 DINOv2-B/14 at 224, ONNX Runtime
//! 1.32), one session with 2 threads gave 8–12 images/s (it swings with the machine's other
//! load), while two 1-thread sessions running side by side gave a steady 12. A single
//! request, though, finishes in about 85 ms on both cores against 160 ms on one. So a pool
//! holds one *solo* session over all cores, used when a batch is the only work in the
//! server, and one narrower session per worker, used while other batches run.
//!
//! Each session holds its own copy of the weights (ONNX Runtime's shared prepacked-weights
//! container was tried and saved nothing measurable: server RSS 1.53 GB against 1.52 GB
//! for a 2-worker fp32 DINOv2-B/14 pool, 385 MB against 387 MB for int8, with one session
//! at 584 MB and 176 MB). For fp32 the pool's throughput was within the machine's noise of
//! one session's (Identify/s at concurrency 8, rounds of one run: 3.75 and 4.00 against
//! 4.05 and 4.10), for int8 it was ahead (11.25 and 12.35 against 8.95 and 10.15); so the
//! automatic layout pools int8 artefacts on a CPU only, and `--embed-workers` overrides it.

use std::path::Path;

use super::metadata::{ArtefactMetadata, Precision};
use super::runtime::{ExecutionProviderKind, RuntimeOptions, SessionSharing};
use super::session::{EmbedError, EmbeddingSession};

/// Most workers an automatic layout chooses: each holds a session, and past a few the
/// gain from less synchronisation is small.
pub const MAX_AUTO_WORKERS: usize = 4;

/// How many sessions a pool holds and how many threads each runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLayout {
    /// Batches that may run at once, each in its own worker session.
    pub workers: usize,
    /// Threads of a worker session's runs.
    pub worker_threads: usize,
    /// Threads of the solo session, when there is one (more than one worker). Without
    /// --intra-threads the session takes ONNX Runtime's own count (one per physical core),
    /// which `cores` (logical) overstates on machines with SMT.
    pub solo_threads: Option<usize>,
}

impl PoolLayout {
    /// `workers` and `intra_threads` as asked for (0: automatic) on a machine of `cores`.
    /// Automatic workers: one per thread (up to `MAX_AUTO_WORKERS`) when `pool_by_default`
    /// (an int8 artefact on a CPU), else one.
    pub fn resolve(
        workers: usize,
        intra_threads: usize,
        cores: usize,
        pool_by_default: bool,
    ) -> Self {
        let threads = if intra_threads > 0 {
            intra_threads
        } else {
            cores.max(1)
        };
        let workers = match workers {
            0 if pool_by_default => threads.min(MAX_AUTO_WORKERS),
            0 => 1,
            n => n,
        };
        if workers == 1 {
            return Self {
                workers,
                worker_threads: threads,
                solo_threads: None,
            };
        }
        Self {
            workers,
            worker_threads: (threads / workers).max(1),
            solo_threads: Some(threads),
        }
    }

    /// The machine's cores, as the standard library sees them (cgroup limits included).
    pub fn cores() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

impl std::fmt::Display for PoolLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |n: usize| if n == 1 { "" } else { "s" };
        let (w, t) = (self.workers, self.worker_threads);
        write!(f, "{w} worker{} of {t} thread{}", s(w), s(t))?;
        if let Some(solo) = self.solo_threads {
            write!(f, ", {solo} thread{} for a batch running alone", s(solo))?;
        }
        Ok(())
    }
}

/// The sessions of one artefact that the embedding queue's workers run.
pub struct EmbeddingPool {
    pub(crate) solo: Option<EmbeddingSession>,
    pub(crate) workers: Vec<EmbeddingSession>,
    layout: PoolLayout,
}

impl EmbeddingPool {
    /// Opens `model` once per worker, plus the solo session, as `workers` and
    /// `opts.intra_threads` resolve on this machine for this artefact (see
    /// `PoolLayout::resolve`).
    pub fn open(model: &Path, opts: &RuntimeOptions, workers: usize) -> Result<Self, EmbedError> {
        // The first session is opened as a lone session always was (ONNX Runtime's own
        // thread count unless --intra-threads, spinning on): the single session of a
        // one-worker pool, else the solo session, which runs while no other session does.
        let first = EmbeddingSession::open(model, opts)?;
        let pool_by_default = first.provider() == ExecutionProviderKind::Cpu
            && first.metadata().precision == Precision::Int8;
        let layout = PoolLayout::resolve(
            workers,
            opts.intra_threads,
            PoolLayout::cores(),
            pool_by_default,
        );
        if layout.solo_threads.is_none() {
            return Ok(Self {
                solo: None,
                workers: vec![first],
                layout,
            });
        }
        let workers = (0..layout.workers)
            .map(|_| EmbeddingSession::open_shared(model, opts, &worker_sharing(&layout)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            solo: Some(first),
            workers,
            layout,
        })
    }

    /// Runs every session once on a grey image: kernels, allocations and (on CUDA) the
    /// device are ready before the first request.
    pub fn warm_up(&mut self) -> Result<(), EmbedError> {
        for session in self.solo.iter_mut().chain(self.workers.iter_mut()) {
            let s = session.metadata().input_size as usize;
            session.embed(ndarray::Array4::<u8>::from_elem((1, s, s, 3), 128).view())?;
        }
        Ok(())
    }

    pub fn layout(&self) -> PoolLayout {
        self.layout
    }

    pub fn metadata(&self) -> &ArtefactMetadata {
        self.workers[0].metadata()
    }

    pub fn provider(&self) -> ExecutionProviderKind {
        self.workers[0].provider()
    }
}

/// A worker's session runs beside others: its idle threads must not spin on their cores.
fn worker_sharing(layout: &PoolLayout) -> SessionSharing {
    SessionSharing {
        intra_threads: layout.worker_threads,
        yield_when_idle: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_pool_is_one_single_thread_worker_per_core_plus_a_solo_session() {
        let l = PoolLayout::resolve(0, 0, 2, true);
        assert_eq!(
            l,
            PoolLayout {
                workers: 2,
                worker_threads: 1,
                solo_threads: Some(2)
            }
        );
        assert_eq!(
            l.to_string(),
            "2 workers of 1 thread, 2 threads for a batch running alone"
        );
        assert_eq!(
            PoolLayout::resolve(0, 0, 32, true).workers,
            MAX_AUTO_WORKERS
        );
        assert_eq!(PoolLayout::resolve(0, 0, 32, true).worker_threads, 8);
    }

    #[test]
    fn one_worker_uses_every_thread_and_has_no_solo_session() {
        let one = |workers, threads| PoolLayout {
            workers,
            worker_threads: threads,
            solo_threads: None,
        };
        // Asked for; not an int8 artefact on a CPU; a single core.
        assert_eq!(PoolLayout::resolve(1, 0, 4, true), one(1, 4));
        assert_eq!(PoolLayout::resolve(0, 0, 4, false), one(1, 4));
        assert_eq!(PoolLayout::resolve(0, 0, 1, true), one(1, 1));
        assert_eq!(PoolLayout::resolve(0, 3, 4, false), one(1, 3));
    }

    #[test]
    fn explicit_workers_pool_any_artefact_and_divide_the_threads() {
        let l = PoolLayout::resolve(3, 4, 16, false);
        assert_eq!(
            (l.workers, l.worker_threads, l.solo_threads),
            (3, 1, Some(4))
        );
        // More workers than threads still gives each worker one.
        assert_eq!(PoolLayout::resolve(4, 2, 2, false).worker_threads, 1);
    }
}
