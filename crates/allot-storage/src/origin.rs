//! Who is writing and from where: the [`Origin`] every event of a write records.
//!
//! The server sets it once per request (a middleware over every transport) and once per job
//! run, with [`scope`]. Storage reads it where it is still in the caller's task, at the entry
//! point of a write ([`current`]), and carries it with the write: into the SQLite writer
//! thread's job (which sets it for the job's run, [`in_writer`]) and into each PostgreSQL batch
//! item (whose events are made by their own caller). The appenders resolve every event's
//! origin from it, so an event builder cannot forget it. A write made outside any scope (the
//! admin CLI, tests using the store directly) is recorded as `unattributed`.

use std::cell::Cell;
use std::future::Future;

use allot_domain::event::NewEvent;
pub use allot_domain::event::{Actor, Origin};

tokio::task_local! {
    static TASK_ORIGIN: Origin;
}

thread_local! {
    /// The origin of the job the SQLite writer thread is running, while it runs it.
    static WRITER_ORIGIN: Cell<Option<Origin>> = const { Cell::new(None) };
}

/// Runs `work` with `origin` as the origin of every write it makes.
pub async fn scope<F: Future>(origin: Origin, work: F) -> F::Output {
    TASK_ORIGIN.scope(origin, work).await
}

/// Runs `work` in the scope of `origin` when there is one (a task spawned by a request keeps
/// its request's origin this way).
pub async fn scope_opt<F: Future>(origin: Option<Origin>, work: F) -> F::Output {
    match origin {
        Some(o) => scope(o, work).await,
        None => work.await,
    }
}

/// The origin of the write in progress: the task's scope, else the writer job's.
pub fn current() -> Option<Origin> {
    TASK_ORIGIN
        .try_with(|o| *o)
        .ok()
        .or_else(|| WRITER_ORIGIN.with(Cell::get))
}

/// Runs a writer-thread job with its caller's origin.
pub(crate) fn in_writer<R>(origin: Option<Origin>, run: impl FnOnce() -> R) -> R {
    let before = WRITER_ORIGIN.with(|c| c.replace(origin));
    let result = run();
    WRITER_ORIGIN.with(|c| c.set(before));
    result
}

/// The origin an appended event records: its own (a job's, or a batch item's caller's), else
/// the current write's.
pub(crate) fn resolve(event: &NewEvent) -> Origin {
    event
        .origin
        .or_else(current)
        .unwrap_or(Origin::UNATTRIBUTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scope_is_seen_inside_and_not_outside() {
        let user = Origin {
            actor: Actor::User(9),
            source: Some("10.0.0.1".parse().unwrap()),
        };
        assert_eq!(current(), None);
        assert_eq!(scope(user, async { current() }).await, Some(user));
        assert_eq!(current(), None);
        let job = Origin::system(allot_domain::event::ACTOR_COUPON_PURGE);
        assert_eq!(in_writer(Some(job), current), Some(job));
        assert_eq!(current(), None);
    }
}
