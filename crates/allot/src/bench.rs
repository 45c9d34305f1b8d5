//! `allot bench`: measures a running server, each figure beside the same server's hello-world
//! measured in the same run, so that figures read as ratios of what the stack can do at all.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use allot_server::pb::discount::discount_client::DiscountClient;
use allot_server::pb::discount::{GenerateRequest, UseCodeRequest};
use clap::{Args, Subcommand};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::grpc_client::{DEFAULT_SERVER, GrpcChannel, connect};
use crate::issue_load::{IssueLoad, Protocol, Transport, hello};
use crate::load::{self, Budget, Outcome, Summary};

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Discount codes over gRPC: generate 1,000,000 codes (500 calls of 2,000), then UseCode at
    /// 64 concurrent clients, beside gRPC hello-world (grpc.health.v1 Check)
    Discount(DiscountBench),
    /// Campaign IssueCoupon, durable, over gRPC, Connect and REST at 64 and 256 clients, each
    /// beside the same protocol's hello-world; every run is verified through GetCampaign
    Issue(IssueBench),
}

#[derive(Debug, Args)]
pub(crate) struct IssueBench {
    /// Server URL
    #[arg(long, env = "ALLOT_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// Seconds each timed phase runs
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Client counts to measure
    #[arg(long, value_delimiter = ',', default_values_t = [64, 256])]
    concurrency: Vec<usize>,
    /// Protocols to measure
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Protocol::Grpc, Protocol::Connect, Protocol::Rest])]
    protocols: Vec<Protocol>,
    /// HTTP/2 connections for gRPC
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// No progress bars (for logs)
    #[arg(long)]
    no_progress: bool,
}

impl IssueBench {
    async fn run(self) -> Result<(), String> {
        println!("allot bench issue: server {}", self.server);
        let mut failed = Vec::new();
        for &protocol in &self.protocols {
            for &concurrency in &self.concurrency {
                let transport = Transport::new(&self.server, protocol, self.connections).await?;
                let hello_summary =
                    hello(&transport, concurrency, self.seconds, !self.no_progress).await;
                let report = IssueLoad {
                    server: self.server.clone(),
                    protocol,
                    campaign: None,
                    create: Some(allot_domain::campaign::TOTAL_COUPONS_MAX),
                    concurrency,
                    requests: 0,
                    seconds: Some(self.seconds),
                    connections: self.connections,
                    no_progress: self.no_progress,
                }
                .run()
                .await?;
                println!("{}", hello_summary.line());
                println!("{}", report.summary.line());
                println!(
                    "  -> {:?} c={concurrency}: {:.0} issued/s = {:.0}% of hello-world; verified: {}",
                    protocol,
                    report.summary.rate(),
                    100.0 * report.summary.rate() / hello_summary.rate(),
                    if report.problems.is_empty() {
                        "ok".to_owned()
                    } else {
                        report.problems.join("; ")
                    }
                );
                if !report.problems.is_empty() {
                    failed.push(format!("{protocol:?} c={concurrency}"));
                }
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(format!("verification failed for {}", failed.join(", ")))
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct DiscountBench {
    /// Server URL
    #[arg(long, env = "ALLOT_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// Concurrent clients for UseCode and hello-world
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds each timed phase runs
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Generate calls of 2,000 codes each
    #[arg(long, default_value_t = 500)]
    generate_calls: u64,
    /// Generate calls in flight at once
    #[arg(long, default_value_t = 16)]
    generate_concurrency: usize,
    /// HTTP/2 connections the clients share
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// No progress bars (for logs)
    #[arg(long)]
    no_progress: bool,
}

impl BenchCommand {
    pub(crate) async fn run(self) -> ExitCode {
        let result = match self {
            BenchCommand::Discount(b) => b.run().await,
            BenchCommand::Issue(b) => b.run().await,
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("allot bench: {e}");
                ExitCode::FAILURE
            }
        }
    }
}

pub(crate) async fn connections(server: &str, n: usize) -> Result<Arc<Vec<GrpcChannel>>, String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        out.push(connect(server).await?);
    }
    Ok(Arc::new(out))
}

/// gRPC hello-world: the standard health check, which touches nothing but the stack.
pub(crate) async fn grpc_hello(
    channels: &Arc<Vec<GrpcChannel>>,
    concurrency: usize,
    seconds: u64,
    progress: bool,
) -> Summary {
    let channels = channels.clone();
    load::run(
        "gRPC hello-world (health Check)",
        concurrency,
        Budget::Duration(Duration::from_secs(seconds)),
        progress,
        move |worker, _| {
            let mut client = HealthClient::new(channels[worker % channels.len()].clone());
            async move {
                match client.check(HealthCheckRequest::default()).await {
                    Ok(_) => Outcome::Ok,
                    Err(s) => Outcome::Failed(s.to_string()),
                }
            }
        },
    )
    .await
}

impl DiscountBench {
    async fn run(self) -> Result<(), String> {
        let progress = !self.no_progress;
        let channels = connections(&self.server, self.connections).await?;
        println!(
            "allot bench discount: server {}, {} connections",
            self.server, self.connections
        );

        let hello = grpc_hello(&channels, self.concurrency, self.seconds, progress).await;
        println!("{}", hello.line());

        // Generate: a fixed amount of work, timed end to end.
        let codes = Arc::new(Mutex::new(Vec::with_capacity(
            self.generate_calls as usize * 2000,
        )));
        let started = Instant::now();
        let generate = {
            let channels = channels.clone();
            let codes = codes.clone();
            load::run(
                "Generate(2000, 8)",
                self.generate_concurrency,
                Budget::Requests(self.generate_calls),
                progress,
                move |worker, _| {
                    let mut client = DiscountClient::new(channels[worker % channels.len()].clone());
                    let codes = codes.clone();
                    async move {
                        match client
                            .generate(GenerateRequest {
                                count: 2000,
                                length: vec![8],
                            })
                            .await
                        {
                            Ok(r) => {
                                let r = r.into_inner();
                                if !r.result || r.codes.len() != 2000 {
                                    return Outcome::Failed("short or refused batch".to_owned());
                                }
                                codes.lock().expect("codes").extend(r.codes);
                                Outcome::Ok
                            }
                            Err(s) => Outcome::Failed(s.to_string()),
                        }
                    }
                },
            )
            .await
        };
        let generate_secs = started.elapsed().as_secs_f64();
        println!("{}", generate.line());
        let all: Vec<String> = std::mem::take(&mut *codes.lock().expect("codes"));
        let distinct: std::collections::HashSet<&String> = all.iter().collect();
        println!(
            "  -> {} codes in {:.2}s = {:.0} codes/s; {} distinct",
            all.len(),
            generate_secs,
            all.len() as f64 / generate_secs,
            distinct.len()
        );
        if distinct.len() != all.len() {
            return Err("duplicate codes were generated".to_owned());
        }

        // UseCode: each worker uses codes of its own share, so every answer must be "used now".
        let shares: Vec<Mutex<Vec<String>>> = (0..self.concurrency)
            .map(|w| {
                Mutex::new(
                    all.iter()
                        .skip(w)
                        .step_by(self.concurrency)
                        .cloned()
                        .collect(),
                )
            })
            .collect();
        let shares = Arc::new(shares);
        let use_code = {
            let channels = channels.clone();
            load::run(
                "UseCode (durable)",
                self.concurrency,
                Budget::Duration(Duration::from_secs(self.seconds)),
                progress,
                move |worker, _| {
                    let mut client = DiscountClient::new(channels[worker % channels.len()].clone());
                    let code = shares[worker].lock().expect("share").pop();
                    async move {
                        let Some(code) = code else {
                            return Outcome::Refused("out_of_codes");
                        };
                        match client.use_code(UseCodeRequest { code }).await {
                            Ok(r) if r.get_ref().result == [0] => Outcome::Ok,
                            Ok(r) => Outcome::Failed(format!("result {:?}", r.get_ref().result)),
                            Err(s) => Outcome::Failed(s.to_string()),
                        }
                    }
                },
            )
            .await
        };
        println!("{}", use_code.line());
        println!(
            "  -> UseCode at {:.0}% of the gRPC hello-world rate",
            100.0 * use_code.rate() / hello.rate()
        );
        if generate.failed + use_code.failed + hello.failed > 0 {
            return Err(format!(
                "failures: {:?} {:?} {:?}",
                hello.first_failure, generate.first_failure, use_code.first_failure
            ));
        }
        Ok(())
    }
}
