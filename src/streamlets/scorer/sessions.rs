//! The scorer's sessions: one thread per session, each scoring a batch at a time. A session
//! that comes free takes what is queued (up to `max_batch`) itself, at once: no round trip
//! through the scorer's task, whose wake-up would leave the session idle meanwhile. The task
//! only queues what arrives and emits what was scored, in the order it was taken.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::{mpsc, Notify};

use super::config::{ScorerConfig, ScorerPort};
use super::serving::Serving;
use super::{Scored, StreamletError};
use crate::streamlets::io::{Acks, Envelope};
use crate::streamlets::{Batch, Io, Stop};

/// Records waiting for a session: the batches they came in, joined only when taken.
#[derive(Default)]
struct Pending {
    parts: std::collections::VecDeque<Batch>,
    rows: usize,
}

impl Pending {
    fn push(&mut self, batch: Batch) {
        if !batch.is_empty() {
            self.rows += batch.len();
            self.parts.push_back(batch);
        }
    }

    fn len(&self) -> usize {
        self.rows
    }

    fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Up to `max` records, the oldest first, in the pieces they came in (joined by the
    /// session that takes them, outside the lock).
    fn take(&mut self, max: usize) -> Vec<Batch> {
        let mut taken = Vec::new();
        let mut n = 0;
        while n < max {
            let Some(mut part) = self.parts.pop_front() else { break };
            if n + part.len() > max {
                let rest = part.split_off(max - n);
                self.parts.push_front(rest);
            }
            n += part.len();
            taken.push(part);
        }
        self.rows -= n;
        taken
    }
}

/// What the scorer's task and its sessions share.
struct Queue {
    state: Mutex<State>,
    /// Sessions wait here for records, or for earlier batches to be emitted.
    work: Condvar,
    /// The task waits here for room to queue more.
    room: Notify,
    max_batch: usize,
    max_wait: Duration,
    /// Batches taken and not yet emitted, at most: a session stuck on a slow batch holds back
    /// the others' results, and this bounds how many wait for it.
    window: usize,
}

struct State {
    pending: Pending,
    /// The acknowledgements of the batches the pending records came in.
    acks: Acks,
    /// When the oldest pending record was queued (for `max_wait`).
    since: Option<Instant>,
    /// More records may come.
    open: bool,
    /// The task is gone: sessions take nothing more.
    abandoned: bool,
    /// The number of the next batch taken: batches are emitted in this order.
    next: u64,
    /// Batches taken and not yet emitted.
    unsent: usize,
}

/// A batch a session took, with its number.
struct Taken {
    seq: u64,
    parts: Vec<Batch>,
    acks: Acks,
}

/// What a session sends back: a batch's number and its result, or why scoring stopped.
type Done = (u64, Result<(Scored, Acks), String>);

impl Queue {
    fn new(max_batch: usize, max_wait: Duration, window: usize) -> Queue {
        Queue {
            state: Mutex::new(State {
                pending: Pending::default(),
                acks: Acks::default(),
                since: None,
                open: true,
                abandoned: false,
                next: 0,
                unsent: 0,
            }),
            work: Condvar::new(),
            room: Notify::new(),
            max_batch,
            max_wait,
            window,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().pending.len()
    }

    /// Whether every batch taken was emitted and nothing is queued: a clean end.
    fn drained(&self) -> bool {
        let state = self.lock();
        state.unsent == 0 && state.pending.is_empty()
    }

    /// Queues incoming batches for the sessions.
    fn add(&self, batches: impl IntoIterator<Item = Envelope>) {
        let mut state = self.lock();
        for Envelope { records, acks } in batches {
            if state.pending.is_empty() {
                state.since = Some(Instant::now());
            }
            state.pending.push(records);
            state.acks.extend(acks);
        }
        drop(state);
        self.work.notify_one();
    }

    /// No more records will come: the sessions score what is queued and end.
    fn close(&self) {
        self.lock().open = false;
        self.work.notify_all();
    }

    /// A batch was emitted: one more may be taken.
    fn sent(&self) {
        self.lock().unsent -= 1;
        self.work.notify_one();
    }

    /// The next batch for a session, waiting while there is none (or, with `max_wait`, while
    /// a partial one may still fill); `None` when the session is to end.
    fn take(&self) -> Option<Taken> {
        let mut state = self.lock();
        loop {
            if state.abandoned {
                return None;
            }
            if state.pending.is_empty() && !state.open {
                return None;
            }
            let mut wait = None;
            if !state.pending.is_empty() && state.unsent < self.window {
                let filled = state.pending.len() >= self.max_batch || !state.open || self.max_wait.is_zero();
                let due = state.since.map_or(Instant::now(), |since| since + self.max_wait);
                let now = Instant::now();
                if filled || due <= now {
                    break;
                }
                wait = Some(due - now);
            }
            state = match wait {
                Some(wait) => self.work.wait_timeout(state, wait).unwrap_or_else(|p| p.into_inner()).0,
                None => self.work.wait(state).unwrap_or_else(|p| p.into_inner()),
            };
        }
        let parts = state.pending.take(self.max_batch);
        // Records of one incoming batch may go in two model batches: each carries its acks.
        let acks = if state.pending.is_empty() {
            state.since = None;
            std::mem::take(&mut state.acks)
        } else {
            state.acks.clone()
        };
        let seq = state.next;
        state.next += 1;
        state.unsent += 1;
        let more = !state.pending.is_empty();
        drop(state);
        if more {
            // What is left is for another free session.
            self.work.notify_one();
        }
        self.room.notify_one();
        Some(Taken { seq, parts, acks })
    }
}

/// Ends the sessions when the task goes, whatever way it goes.
struct Abandon(Arc<Queue>);

impl Drop for Abandon {
    fn drop(&mut self) {
        self.0.lock().abandoned = true;
        self.0.work.notify_all();
    }
}

/// A session: takes batches and scores them until the queue ends or the task goes. A panic
/// ends it with the panic's message sent in place of a result.
fn session(queue: &Queue, serving: &Serving, done: &mpsc::UnboundedSender<Done>) {
    let scoring = catch_unwind(AssertUnwindSafe(|| {
        while let Some(Taken { seq, parts, acks }) = queue.take() {
            let scored = serving.score(Batch::concat(&parts));
            if done.send((seq, Ok((scored, acks)))).is_err() {
                return;
            }
        }
    }));
    if let Err(panic) = scoring {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into());
        let _ = done.send((0, Err(message)));
    }
}

/// Scores the inlet's records with up to `sessions` batches at once, emitting in order.
/// A batch never waits for records that are not there: a free session takes what is queued
/// (up to `max_batch`) and goes; what arrives while every session is busy forms the next
/// batch. Only with `max_wait_ms` set does a partial batch wait, at most that long after its
/// first record, for more.
pub(super) async fn score_stream(io: &mut Io, serving: Arc<Serving>, config: &ScorerConfig) -> Result<(), Stop> {
    let sessions = config.sessions.max(1);
    let max_batch = config.batch.max_batch.max(1);
    let out = io.outlets.get(ScorerPort::Out)?;
    let errors = io.outlets.get(ScorerPort::Errors)?;
    let shadow = io.outlets.find(ScorerPort::Shadow);
    let queue = Arc::new(Queue::new(
        max_batch,
        Duration::from_millis(config.batch.max_wait_ms),
        2 * sessions,
    ));
    let _abandon = Abandon(queue.clone());
    let (done, mut results) = mpsc::unbounded_channel::<Done>();
    for _ in 0..sessions {
        let (queue, serving, done) = (queue.clone(), serving.clone(), done.clone());
        // On the runtime's blocking threads: a runtime shutting down waits for them (for as
        // long as it is told to), as it does for every blocking task.
        drop(tokio::task::spawn_blocking(move || session(&queue, &serving, &done)));
    }
    // The sessions hold the only senders: the results end when the last session has.
    drop(done);
    // Enough queued for every session's next batch, so that none waits for the task.
    let limit = max_batch * sessions;
    let mut input_open = true;
    let mut finished: BTreeMap<u64, (Scored, Acks)> = BTreeMap::new();
    let mut emitted = 0u64;
    loop {
        let room = input_open && queue.len() < limit;
        tokio::select! {
            biased;
            result = results.recv() => match result {
                Some((seq, Ok(result))) => {
                    finished.insert(seq, result);
                    while let Some((scored, acks)) = finished.remove(&emitted) {
                        emitted += 1;
                        out.send_acked(scored.out, acks.clone()).await?;
                        if let Some(shadow) = shadow {
                            shadow.send_acked(scored.shadow, acks.clone()).await?;
                        }
                        errors.send_acked(scored.errors, acks).await?;
                        queue.sent();
                    }
                }
                Some((_, Err(panic))) => {
                    return Err(StreamletError::Internal(format!("scoring stopped abnormally: {panic}")).into())
                }
                // Every session has ended: after the input ended and all of it was scored and
                // emitted, or else in a way no session reported.
                None if !input_open && finished.is_empty() && queue.drained() => return Ok(()),
                None => {
                    return Err(StreamletError::Internal("the scoring sessions ended before the input".into()).into())
                }
            },
            batch = io.inlet.recv_acked(), if room => match batch {
                Some(first) => {
                    // What else is queued now joins it, so that a free session takes it all.
                    let mut arrived = vec![first];
                    let mut queued = arrived[0].records.len() + queue.len();
                    while queued < limit {
                        match io.inlet.recv_acked().now_or_never() {
                            Some(Some(next)) => {
                                queued += next.records.len();
                                arrived.push(next);
                            }
                            Some(None) => {
                                input_open = false;
                                break;
                            }
                            None => break,
                        }
                    }
                    queue.add(arrived);
                    if !input_open {
                        queue.close();
                    }
                }
                None => {
                    input_open = false;
                    queue.close();
                }
            },
            _ = queue.room.notified(), if input_open && !room => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc as std_mpsc;

    fn records(ids: std::ops::Range<u64>) -> Batch {
        let maps: Vec<_> = ids
            .map(|id| serde_json::json!({ "id": id }).as_object().cloned().expect("an object"))
            .collect();
        Batch::from_records(&maps)
    }

    fn arrived(ids: std::ops::Range<u64>) -> [Envelope; 1] {
        [Envelope {
            records: records(ids),
            acks: Acks::default(),
        }]
    }

    fn ids(batch: &Batch) -> Vec<u64> {
        batch
            .records()
            .iter()
            .map(|r| r["id"].as_u64().expect("an id"))
            .collect()
    }

    /// `take` on a thread of its own: where its answer will come.
    fn taker(queue: &Arc<Queue>) -> std_mpsc::Receiver<Option<(u64, Vec<u64>)>> {
        let (tx, rx) = std_mpsc::channel();
        let q = queue.clone();
        std::thread::spawn(move || {
            let _ = tx.send(q.take().map(|t| (t.seq, ids(&Batch::concat(&t.parts)))));
        });
        rx
    }

    /// `take`'s answer, unless it is still waiting after `patience`.
    fn take_within(queue: &Arc<Queue>, patience: Duration) -> Option<Option<(u64, Vec<u64>)>> {
        taker(queue).recv_timeout(patience).ok()
    }

    const LONG: Duration = Duration::from_secs(30);

    #[test]
    fn a_free_session_takes_what_is_queued_now_up_to_the_batch_size_in_order() {
        let queue = Arc::new(Queue::new(4, Duration::ZERO, 8));
        queue.add(arrived(0..3));
        // Three records, not four: nothing more is waited for.
        assert_eq!(take_within(&queue, LONG), Some(Some((0, vec![0, 1, 2]))));
        queue.add(arrived(3..6));
        queue.add(arrived(6..9));
        assert_eq!(take_within(&queue, LONG), Some(Some((1, vec![3, 4, 5, 6]))));
        assert_eq!(take_within(&queue, LONG), Some(Some((2, vec![7, 8]))));
        queue.close();
        assert_eq!(
            take_within(&queue, LONG),
            Some(None),
            "closed and empty: the session ends"
        );
    }

    #[test]
    fn with_max_wait_a_partial_batch_waits_to_fill_but_goes_when_full_or_closed() {
        let queue = Arc::new(Queue::new(4, Duration::from_secs(3600), 8));
        queue.add(arrived(0..2));
        // Half a batch, with an hour to fill: a session waits ...
        let waiting = taker(&queue);
        assert!(waiting.recv_timeout(Duration::from_millis(300)).is_err());
        // ... and takes it once it is full.
        queue.add(arrived(2..6));
        assert_eq!(waiting.recv_timeout(LONG).ok(), Some(Some((0, vec![0, 1, 2, 3]))));
        // Closed: the rest goes at once.
        queue.close();
        assert_eq!(take_within(&queue, LONG), Some(Some((1, vec![4, 5]))));
    }

    #[test]
    fn a_partial_batch_goes_when_its_wait_is_over() {
        let queue = Arc::new(Queue::new(100, Duration::from_millis(20), 8));
        queue.add(arrived(0..3));
        assert_eq!(take_within(&queue, LONG), Some(Some((0, vec![0, 1, 2]))));
    }

    #[test]
    fn sessions_wait_while_a_window_of_batches_is_not_yet_emitted() {
        let queue = Arc::new(Queue::new(1, Duration::ZERO, 2));
        queue.add(arrived(0..4));
        assert_eq!(take_within(&queue, LONG), Some(Some((0, vec![0]))));
        assert_eq!(take_within(&queue, LONG), Some(Some((1, vec![1]))));
        // Two taken, none emitted: the next waits ...
        let rx = taker(&queue);
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        // ... until one is.
        queue.sent();
        assert_eq!(rx.recv_timeout(LONG).ok(), Some(Some((2, vec![2]))));
    }

    #[test]
    fn sessions_end_when_the_task_goes_even_with_records_queued() {
        let queue = Arc::new(Queue::new(1, Duration::ZERO, 1));
        queue.add(arrived(0..3));
        assert_eq!(take_within(&queue, LONG), Some(Some((0, vec![0]))));
        // A session waits for the window ...
        let rx = taker(&queue);
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        drop(Abandon(queue.clone()));
        // ... and ends without taking more.
        assert_eq!(rx.recv_timeout(LONG).ok(), Some(None));
        assert_eq!(take_within(&queue, LONG), Some(None));
    }
}
