//! Admission under three limits at once, for MEGADEAL requests: at most `in_flight_max` being
//! served at the same time, at most `per_second_max` admitted in any one-second window, and
//! no request waiting longer than `wait_max`.
//!
//! Requests queue in FIFO order on a bounded channel sized to `wait_max` of work at the rate
//! limit (100 for 10/s and 10 s): a request that finds it full is refused at once instead of
//! after waiting. One dispatcher task admits them in order: it waits until the rate allows
//! (the new admission at least one second after the `per_second_max`-th most recent one), then
//! for a free concurrency slot, and hands the slot (a semaphore permit) to the request. The
//! request holds the slot while it is served; dropping it gives the slot back, whatever the
//! outcome (an error, a panic, a client that went away). A request whose deadline passes while
//! it waits is answered "busy" at its deadline.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use allot_domain::{Clock, UnixMillis};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    pub in_flight_max: usize,
    pub per_second_max: usize,
    pub wait_max: Duration,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            in_flight_max: 5,
            per_second_max: 10,
            wait_max: Duration::from_secs(10),
        }
    }
}

/// The request could not be admitted in time; retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    pub retry_after_secs: u64,
}

struct Waiter {
    deadline: Instant,
    reply: oneshot::Sender<Slot>,
}

/// A concurrency slot, held while a request is served. Dropping it gives it back.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    in_flight: Arc<AtomicUsize>,
    /// When the request was admitted, by the server's clock: the instant it counts as served
    /// in the rate limit, and the one to record.
    pub admitted_at: UnixMillis,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request in the queue.
pub struct Queued {
    deadline: Instant,
    answer: oneshot::Receiver<Slot>,
}

impl Queued {
    /// Waits for the slot, at most until the request's deadline.
    pub async fn admitted(self) -> Result<Slot, Busy> {
        match tokio::time::timeout_at(self.deadline, self.answer).await {
            Ok(Ok(slot)) => Ok(slot),
            _ => Err(Busy {
                retry_after_secs: 1,
            }),
        }
    }
}

/// What the admission is doing now, for the status endpoint and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionStatus {
    pub in_flight: usize,
    pub peak_in_flight: usize,
    pub queued: usize,
}

pub struct Admission {
    limits: AdmissionLimits,
    queue: mpsc::Sender<Waiter>,
    queue_capacity: usize,
    in_flight: Arc<AtomicUsize>,
    peak_in_flight: Arc<AtomicUsize>,
}

impl Admission {
    /// Starts the dispatcher task; it ends when the `Admission` is dropped. The rate limit
    /// is kept by `clock`, in whole milliseconds, so that the admission instants it hands out
    /// (and that get recorded) are themselves never more than `per_second_max` in any second.
    pub fn start(limits: AdmissionLimits, clock: Arc<dyn Clock>) -> Self {
        let queue_capacity =
            (limits.per_second_max as u64 * limits.wait_max.as_secs().max(1)) as usize;
        let (queue, rx) = mpsc::channel(queue_capacity.max(1));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak_in_flight = Arc::new(AtomicUsize::new(0));
        tokio::spawn(dispatch(
            rx,
            limits,
            clock,
            Arc::new(Semaphore::new(limits.in_flight_max)),
            in_flight.clone(),
            peak_in_flight.clone(),
        ));
        Admission {
            limits,
            queue,
            queue_capacity,
            in_flight,
            peak_in_flight,
        }
    }

    /// Joins the queue, or is refused at once when it holds `wait_max` of work already.
    pub fn enqueue(&self) -> Result<Queued, Busy> {
        let deadline = Instant::now() + self.limits.wait_max;
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send(Waiter { deadline, reply }) {
            Ok(()) => Ok(Queued { deadline, answer }),
            Err(_) => Err(Busy {
                retry_after_secs: self.limits.wait_max.as_secs().max(1),
            }),
        }
    }

    pub fn status(&self) -> AdmissionStatus {
        AdmissionStatus {
            in_flight: self.in_flight.load(Ordering::Acquire),
            peak_in_flight: self.peak_in_flight.load(Ordering::Acquire),
            queued: self.queue_capacity - self.queue.capacity(),
        }
    }

    pub fn limits(&self) -> AdmissionLimits {
        self.limits
    }
}

const WINDOW_MS: i64 = 1_000;

async fn dispatch(
    mut rx: mpsc::Receiver<Waiter>,
    limits: AdmissionLimits,
    clock: Arc<dyn Clock>,
    slots: Arc<Semaphore>,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
) {
    let mut recent: VecDeque<UnixMillis> = VecDeque::with_capacity(limits.per_second_max + 1);
    while let Some(waiter) = rx.recv().await {
        if waiter.reply.is_closed() || Instant::now() >= waiter.deadline {
            continue;
        }
        let permit =
            match tokio::time::timeout_at(waiter.deadline, slots.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => continue,
            };
        // The new admission must come a full window after the per_second_max-th most recent.
        let admitted_at = loop {
            let now = clock.now();
            let earliest = if recent.len() >= limits.per_second_max {
                recent[0].plus_millis(WINDOW_MS)
            } else {
                now
            };
            if now >= earliest {
                break Some(now);
            }
            let wait = Duration::from_millis((earliest.as_millis() - now.as_millis()) as u64);
            if Instant::now() + wait >= waiter.deadline {
                break None;
            }
            tokio::time::sleep(wait).await;
        };
        // Could not start in time: dropping the waiter (and the permit) answers "busy".
        let Some(admitted_at) = admitted_at else {
            continue;
        };
        let now_in_flight = in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        peak.fetch_max(now_in_flight, Ordering::AcqRel);
        let slot = Slot {
            _permit: permit,
            in_flight: in_flight.clone(),
            admitted_at,
        };
        // A waiter that gave up drops the slot here, which gives it back. Its admission still
        // counts against the rate: counting too much is safe, too little is not.
        let _ = waiter.reply.send(slot);
        recent.push_back(admitted_at);
        if recent.len() > limits.per_second_max {
            recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wall-clock milliseconds that follow tokio's (paused, auto-advancing) test clock.
    struct TokioClock(Instant);

    impl Clock for TokioClock {
        fn now(&self) -> UnixMillis {
            UnixMillis::from_millis(1_000_000 + self.0.elapsed().as_millis() as i64)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn limits_hold_and_slots_come_back() {
        let started = Instant::now();
        let admission = Arc::new(Admission::start(
            AdmissionLimits::default(),
            Arc::new(TokioClock(started)),
        ));
        let mut tasks = Vec::new();
        for _ in 0..150 {
            let queued = admission.enqueue();
            tasks.push(tokio::spawn(async move {
                let slot = queued?.admitted().await?;
                let at = slot.admitted_at;
                tokio::time::sleep(Duration::from_millis(50)).await;
                drop(slot);
                Ok::<_, Busy>(at)
            }));
        }
        let mut served = Vec::new();
        let mut busy = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(at) => served.push(at),
                Err(_) => busy += 1,
            }
        }
        assert!(!served.is_empty() && busy > 0);
        served.sort();
        for (i, at) in served.iter().enumerate() {
            let in_window = served[i..]
                .iter()
                .take_while(|t| t.as_millis() < at.as_millis() + 1_000)
                .count();
            assert!(in_window <= 10, "{in_window} admitted within one second");
            assert!(at.as_millis() - 1_000_000 <= 10_000);
        }
        let status = admission.status();
        assert!(status.peak_in_flight <= 5);
        assert_eq!(status.in_flight, 0);
    }
}
