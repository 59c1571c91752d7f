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
//! at 584 MB and 176 MB), so a pool costs memory: `--embed-workers 1` is the lean layout.

use std::path::Path;

use super::metadata::ArtefactMetadata;
use super::runtime::{cuda_possible, ExecutionProviderKind, RuntimeOptions, SessionSharing};
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
    /// Threads of the solo session, when there is one (more than one worker).
    pub solo_threads: Option<usize>,
}

impl PoolLayout {
    /// `workers` and `intra_threads` as asked for (0: automatic) on a machine of `cores`.
    /// Automatic: one worker per thread (up to `MAX_AUTO_WORKERS`) on a CPU; one worker on
    /// CUDA, where a run does not synchronise the host's cores.
    pub fn resolve(workers: usize, intra_threads: usize, cores: usize, cuda: bool) -> Self {
        let threads = if intra_threads > 0 {
            intra_threads
        } else {
            cores.max(1)
        };
        let workers = match workers {
            0 if cuda => 1,
            0 => threads.min(MAX_AUTO_WORKERS),
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
    /// One session, one worker.
    pub fn single(session: EmbeddingSession) -> Self {
        Self {
            solo: None,
            workers: vec![session],
            layout: PoolLayout {
                workers: 1,
                worker_threads: 0,
                solo_threads: None,
            },
        }
    }

    /// Opens `model` once per worker, plus the solo session, as `workers` and
    /// `opts.intra_threads` resolve on this machine (see `PoolLayout::resolve`).
    pub fn open(model: &Path, opts: &RuntimeOptions, workers: usize) -> Result<Self, EmbedError> {
        let cuda = cuda_possible(opts)?;
        let layout = PoolLayout::resolve(workers, opts.intra_threads, PoolLayout::cores(), cuda);
        let Some(solo_threads) = layout.solo_threads else {
            let session = EmbeddingSession::open_shared(model, opts, &sharing(&layout))?;
            return Ok(Self {
                layout,
                ..Self::single(session)
            });
        };
        let solo = EmbeddingSession::open_shared(
            model,
            opts,
            // Spinning keeps its threads ready between operators; it runs while the other
            // sessions are idle.
            &SessionSharing {
                intra_threads: solo_threads,
                yield_when_idle: false,
            },
        )?;
        let workers = (0..layout.workers)
            .map(|_| EmbeddingSession::open_shared(model, opts, &sharing(&layout)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            solo: Some(solo),
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

fn sharing(layout: &PoolLayout) -> SessionSharing {
    SessionSharing {
        intra_threads: layout.worker_threads,
        yield_when_idle: layout.workers > 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_layout_is_one_single_thread_worker_per_core_plus_a_solo_session() {
        let l = PoolLayout::resolve(0, 0, 2, false);
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
            PoolLayout::resolve(0, 0, 32, false).workers,
            MAX_AUTO_WORKERS
        );
        assert_eq!(PoolLayout::resolve(0, 0, 32, false).worker_threads, 8);
    }

    #[test]
    fn one_worker_uses_every_thread_and_has_no_solo_session() {
        for l in [
            PoolLayout::resolve(1, 0, 4, false),
            PoolLayout::resolve(0, 0, 4, true),
            PoolLayout::resolve(0, 0, 1, false),
        ] {
            assert_eq!(l.workers, 1);
            assert_eq!(l.solo_threads, None);
        }
        assert_eq!(PoolLayout::resolve(1, 0, 4, false).worker_threads, 4);
    }

    #[test]
    fn explicit_threads_are_divided_between_explicit_workers() {
        let l = PoolLayout::resolve(3, 4, 16, false);
        assert_eq!(
            (l.workers, l.worker_threads, l.solo_threads),
            (3, 1, Some(4))
        );
        // More workers than threads still gives each worker one.
        assert_eq!(PoolLayout::resolve(4, 2, 2, false).worker_threads, 1);
    }
}
