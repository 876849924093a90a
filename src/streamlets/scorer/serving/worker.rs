//! A model's worker thread: it scores the jobs it is given with the version its registry
//! serves at that moment, and says how many it has yet to do.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use crate::models::strategy::BatchAnswer;
use crate::models::{ModelError, ModelRegistry};
use crate::streamlets::scorer::StreamletError;

pub(super) type Reply = (usize, Result<BatchAnswer, ModelError>);

pub(super) struct Job {
    pub(super) model: usize,
    pub(super) rows: Arc<Vec<f32>>,
    pub(super) n: usize,
    pub(super) reply: mpsc::Sender<Reply>,
}

/// A thread that scores jobs with the version its registry serves.
pub(super) struct Worker {
    jobs: mpsc::Sender<Job>,
    pending: Arc<AtomicUsize>,
}

impl Worker {
    pub(super) fn start(id: &str, registry: Arc<ModelRegistry>) -> Result<Worker, StreamletError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let pending = Arc::new(AtomicUsize::new(0));
        let done = pending.clone();
        std::thread::Builder::new()
            .name(format!("sluice-model-{id}"))
            .spawn(move || {
                for job in queue {
                    let answer = match registry.current() {
                        Some(version) => version.run(&job.rows, job.n).map(|(tensors, latency_us)| BatchAnswer {
                            model: job.model,
                            version,
                            tensors,
                            latency_us,
                        }),
                        None => Err(ModelError::Inference(format!(
                            "no version of `{}` serves yet",
                            registry.name()
                        ))),
                    };
                    done.fetch_sub(1, Ordering::Relaxed);
                    // Nobody listens to a late answer any more: it is dropped here.
                    let _ = job.reply.send((job.model, answer));
                }
            })
            .map_err(|e| StreamletError::Internal(format!("cannot start a model worker: {e}")))?;
        Ok(Worker { jobs, pending })
    }

    /// Queues a job; with `unless_busy`, only when the worker has nothing to do.
    pub(super) fn submit(&self, job: Job, unless_busy: bool) -> bool {
        if unless_busy
            && self
                .pending
                .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        if !unless_busy {
            self.pending.fetch_add(1, Ordering::AcqRel);
        }
        if self.jobs.send(job).is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }
}
