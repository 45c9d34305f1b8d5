//! Requests served in batches, each batch on a connection of its own: the shape of every hot
//! write path on PostgreSQL (campaign issues, order creation).
//!
//! Callers put a request on a queue and wait for its answer. One task per queue takes every
//! request waiting (up to [`Batch::MAX`]) while its previous batch commits, and has the batch
//! served in one go; the answers go back in order. A batch that cannot get a connection is
//! answered `Busy` whole, and the connection is made again for the next one.

use super::conn::Conn;
use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use std::sync::Arc;

use crate::health::WriteHealth;
use crate::origin::Origin;
use crate::{Fault, StorageError};

/// How one kind of request is served in batches.
#[async_trait]
pub(super) trait Batch: Send + Sync + 'static {
    type Request: Send + Sync + 'static;
    type Output: Send + 'static;
    /// Requests served together at most.
    const MAX: usize;

    /// Serves `requests`, in arrival order, and answers each, in the same order. An answer
    /// may be `Ok` only once what it says is committed. `origins[i]` is the origin of the
    /// caller of `requests[i]` (taken in its task): its events record it.
    async fn serve(
        client: &mut Conn,
        requests: &[Self::Request],
        origins: &[Option<Origin>],
    ) -> Vec<Result<Self::Output, StorageError>>;
}

type Reply<B> = oneshot::Sender<Result<<B as Batch>::Output, StorageError>>;
type Queued<B> = (<B as Batch>::Request, Option<Origin>, Reply<B>);

/// The queue of one kind of request in one store.
pub(super) struct BatchQueue<B: Batch> {
    queue: mpsc::UnboundedSender<Queued<B>>,
}

impl<B: Batch> BatchQueue<B> {
    /// Starts the serving task on its own connection to `target`; it ends with the queue.
    pub(super) fn start(target: super::PgTarget, health: Arc<WriteHealth>) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        let bound = target.timeouts().answer;
        tokio::spawn(run::<B>(target, rx, health, bound));
        BatchQueue { queue }
    }

    /// Queues `request` and waits for its answer.
    pub(super) async fn submit(&self, request: B::Request) -> Result<B::Output, StorageError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((request, crate::origin::current(), reply))
            .map_err(|_| StorageError::Closed)?;
        answer.await.map_err(|_| StorageError::Closed)?
    }
}

async fn run<B: Batch>(
    target: super::PgTarget,
    mut rx: mpsc::UnboundedReceiver<Queued<B>>,
    health: Arc<WriteHealth>,
    bound: Option<std::time::Duration>,
) {
    let mut client: Option<Conn> = None;
    let mut waiting = Vec::with_capacity(B::MAX);
    while rx.recv_many(&mut waiting, B::MAX).await > 0 {
        let mut requests = Vec::with_capacity(waiting.len());
        let mut origins = Vec::with_capacity(waiting.len());
        let mut replies = Vec::with_capacity(waiting.len());
        for (request, origin, reply) in waiting.drain(..) {
            requests.push(request);
            origins.push(origin);
            replies.push(reply);
        }
        let connection = match client.take().filter(|c| !c.is_closed()) {
            Some(c) => Ok(c),
            None => target.connect().await.map(Conn::new),
        };
        let connection = match connection {
            Ok(c) => c,
            Err(e) => {
                let fault = e.fault().unwrap_or(Fault::Unreachable);
                health.failed(fault);
                let detail = format!("connecting: {e}");
                for reply in replies {
                    let _ = reply.send(Err(StorageError::Unavailable {
                        fault,
                        detail: detail.clone(),
                    }));
                }
                continue;
            }
        };
        // Served in a task of its own so that a panic (a bug) fails this batch, not the queue
        // and every later request with it.
        let mut serving = tokio::spawn(async move {
            let mut connection = connection;
            let answers = B::serve(&mut connection, &requests, &origins).await;
            (connection, answers)
        });
        // A batch that has not finished within the answer timeout is waiting on a lost link
        // (one whose answer was cut part-way, which the socket's own answer timeout does not
        // see): it is given up, its connection with it, and its outcome is unknown (it may
        // have been committing).
        let served = match bound {
            None => serving.await,
            Some(bound) => match tokio::time::timeout(bound, &mut serving).await {
                Ok(served) => served,
                Err(_) => {
                    serving.abort();
                    tracing::warn!(
                        jobs = replies.len(),
                        "a write batch had no answer within the answer timeout: given up"
                    );
                    health.failed(Fault::CommitLost);
                    for reply in replies {
                        let _ = reply.send(Err(StorageError::Unavailable {
                            fault: Fault::CommitLost,
                            detail: format!(
                                "no answer from PostgreSQL within {} ms",
                                bound.as_millis()
                            ),
                        }));
                    }
                    continue;
                }
            },
        };
        let (connection, answers) = match served {
            Ok(served) => served,
            Err(e) => {
                // The connection went with the task: PostgreSQL rolls back its open
                // transaction, so nothing of the batch is kept (unless it panicked after its
                // commit, which no answer then claims either way).
                tracing::error!(error = %e, jobs = replies.len(), "a write batch failed");
                if e.is_panic() {
                    metrics::counter!("allot_storage_write_panics_total").increment(1);
                }
                for reply in replies {
                    let _ = reply.send(Err(StorageError::Panicked(e.to_string())));
                }
                continue;
            }
        };
        match answers
            .iter()
            .find_map(|a| a.as_ref().err().and_then(StorageError::fault))
        {
            Some(fault) => health.failed(fault),
            None if answers.iter().any(Result::is_ok) => health.committed(),
            None => {}
        }
        // A missing answer drops its reply: that caller hears `Closed`.
        for (reply, answer) in replies.into_iter().zip(answers) {
            let _ = reply.send(answer);
        }
        client = Some(connection);
    }
}
