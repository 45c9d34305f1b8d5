//! A closed-loop load driver: `concurrency` workers, each sending its next request as soon as
//! the previous one is answered, until a request budget or a deadline runs out. Latencies go
//! into an HDR histogram; a progress bar shows the rate while it runs.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

/// When a run stops.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Budget {
    Requests(u64),
    Duration(Duration),
}

/// What one request ended as. `Ok` and `Refused` both count as answered requests (a refusal
/// such as "sold out" is a correct answer); `Failed` is an error of the system under test.
pub(crate) enum Outcome {
    Ok,
    Refused(&'static str),
    Failed(String),
}

#[derive(Debug, Default)]
pub(crate) struct Summary {
    pub label: String,
    pub concurrency: usize,
    pub elapsed: Duration,
    pub ok: u64,
    pub refused: Vec<(&'static str, u64)>,
    pub failed: u64,
    pub first_failure: Option<String>,
    pub latency_us: Option<Histogram<u64>>,
}

impl Summary {
    pub fn answered(&self) -> u64 {
        self.ok + self.refused.iter().map(|(_, n)| n).sum::<u64>()
    }

    pub fn rate(&self) -> f64 {
        self.answered() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        self.latency_us
            .as_ref()
            .map_or(0.0, |h| h.value_at_quantile(q) as f64 / 1000.0)
    }

    pub fn p50_ms(&self) -> f64 {
        self.quantile_ms(0.50)
    }
    pub fn p90_ms(&self) -> f64 {
        self.quantile_ms(0.90)
    }
    pub fn p99_ms(&self) -> f64 {
        self.quantile_ms(0.99)
    }
    pub fn max_ms(&self) -> f64 {
        self.latency_us
            .as_ref()
            .map_or(0.0, |h| h.max() as f64 / 1000.0)
    }

    pub fn line(&self) -> String {
        let refused: String = self
            .refused
            .iter()
            .map(|(k, n)| format!(" {k}={n}"))
            .collect();
        format!(
            "{:<34} c={:<4} {:>9.0} req/s  ok={}{} failed={}  p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.1}ms  ({:.2}s)",
            self.label,
            self.concurrency,
            self.rate(),
            self.ok,
            refused,
            self.failed,
            self.p50_ms(),
            self.p90_ms(),
            self.p99_ms(),
            self.max_ms(),
            self.elapsed.as_secs_f64(),
        )
    }
}

/// Runs `call(worker, i)` from `concurrency` workers until the budget is spent.
pub(crate) async fn run<F, Fut>(
    label: &str,
    concurrency: usize,
    budget: Budget,
    progress: bool,
    call: F,
) -> Summary
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    run_with_think(label, concurrency, budget, progress, None, call).await
}

/// Like [`run`], with each worker pausing about `think` (uniformly 0.5 to 1.5 times it,
/// so workers do not fall in step) between its calls, as a person does between orders. The
/// pause is not part of the latency.
pub(crate) async fn run_with_think<F, Fut>(
    label: &str,
    concurrency: usize,
    budget: Budget,
    progress: bool,
    think: Option<Duration>,
    call: F,
) -> Summary
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    let call = Arc::new(call);
    let issued = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = match budget {
        Budget::Duration(d) => Some(started + d),
        Budget::Requests(_) => None,
    };
    let limit = match budget {
        Budget::Requests(n) => n,
        Budget::Duration(_) => u64::MAX,
    };
    let bar = progress.then(|| progress_bar(label, budget));

    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let call = call.clone();
        let issued = issued.clone();
        let done = done.clone();
        workers.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let mut ok = 0u64;
            let mut refused: Vec<(&'static str, u64)> = Vec::new();
            let mut failed = 0u64;
            let mut first_failure = None;
            // With a pause between calls, workers also start spread over one pause.
            if let Some(think) = think {
                tokio::time::sleep(think.mul_f64(rand::random_range(0.0..1.0))).await;
            }
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let i = issued.fetch_add(1, Ordering::Relaxed);
                if i >= limit {
                    break;
                }
                let t = Instant::now();
                let outcome = call(worker, i).await;
                let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
                done.fetch_add(1, Ordering::Relaxed);
                match outcome {
                    Outcome::Ok => ok += 1,
                    Outcome::Refused(kind) => match refused.iter_mut().find(|(k, _)| *k == kind) {
                        Some((_, n)) => *n += 1,
                        None => refused.push((kind, 1)),
                    },
                    Outcome::Failed(why) => {
                        failed += 1;
                        first_failure.get_or_insert(why);
                    }
                }
                if let Some(think) = think {
                    let factor = rand::random_range(0.5..1.5);
                    tokio::time::sleep(think.mul_f64(factor)).await;
                }
            }
            (hist, ok, refused, failed, first_failure)
        }));
    }

    let ticker = bar.clone().map(|bar| {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let n = done.load(Ordering::Relaxed);
                bar.set_position(match budget {
                    Budget::Requests(_) => n,
                    Budget::Duration(_) => started.elapsed().as_millis() as u64,
                });
                bar.set_message(format!(
                    "{n} answered, {:.0}/s",
                    n as f64 / started.elapsed().as_secs_f64()
                ));
            }
        })
    });

    let mut summary = Summary {
        label: label.to_owned(),
        concurrency,
        ..Summary::default()
    };
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    for w in workers {
        let (h, ok, refused, failed, first_failure) = w.await.expect("load worker");
        hist.add(&h).expect("same bounds");
        summary.ok += ok;
        summary.failed += failed;
        if summary.first_failure.is_none() {
            summary.first_failure = first_failure;
        }
        for (kind, n) in refused {
            match summary.refused.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, m)) => *m += n,
                None => summary.refused.push((kind, n)),
            }
        }
    }
    summary.elapsed = started.elapsed();
    summary.latency_us = Some(hist);
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    summary
}

fn progress_bar(label: &str, budget: Budget) -> ProgressBar {
    let (len, template) = match budget {
        Budget::Requests(n) => (n, "{prefix} [{bar:30}] {pos}/{len} {msg}"),
        Budget::Duration(d) => (d.as_millis() as u64, "{prefix} [{bar:30}] {elapsed} {msg}"),
    };
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    bar
}

/// A load command's exit: success, or its problem said on stderr under its name.
pub(crate) fn exit(command: &str, outcome: Result<(), String>) -> std::process::ExitCode {
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("allot load {command}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// What tells one run's names (users, codes, promotions) from an earlier run's on the same
/// server: the start time in milliseconds, in hex.
pub(crate) fn run_id() -> Result<String, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?;
    Ok(format!("{:x}", now.as_millis()))
}
