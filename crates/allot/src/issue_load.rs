//! `allot load issue`: a crowd racing for a campaign's codes, then a check of what it got.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use allot_server::pb::couponpb::coupon_service_client::CouponServiceClient;
use allot_server::pb::couponpb::{CreateCampaignRequest, GetCampaignRequest, IssueCouponRequest};
use clap::{Args, ValueEnum};
use tonic::Code;

use crate::bench::connections;
use crate::grpc_client::{DEFAULT_SERVER, GrpcChannel};
use crate::load::{self, Budget, Outcome, Summary};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Protocol {
    Grpc,
    Connect,
    Rest,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct IssueLoad {
    /// Server URL; several, separated by commas, spread the clients over instances
    #[arg(long, env = "ALLOT_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Protocol of the IssueCoupon requests
    #[arg(long, value_enum, default_value = "grpc")]
    pub protocol: Protocol,
    /// Race for this existing campaign
    #[arg(long, conflicts_with = "create", required_unless_present = "create")]
    pub campaign: Option<i64>,
    /// Create a campaign of N coupons, open now, and race for it
    #[arg(long, value_name = "N")]
    pub create: Option<i64>,
    /// Concurrent clients
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Requests in all
    #[arg(long, default_value_t = 10_000)]
    pub requests: u64,
    /// Run for this many seconds instead of a request count
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Connections (gRPC: HTTP/2 connections; Connect and REST open one per client)
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// No progress bar
    #[arg(long)]
    pub no_progress: bool,
}

/// How requests reach the server.
#[derive(Clone)]
pub(crate) enum Transport {
    Grpc(Arc<Vec<GrpcChannel>>),
    Http {
        client: reqwest::Client,
        /// One base URL per server; client `i` talks to server `i % len`.
        bases: Arc<Vec<String>>,
    },
}

impl Transport {
    /// A transport to `servers`, one URL or several separated by commas (gRPC opens
    /// `connections_n` connections to each).
    pub(crate) async fn new(
        servers: &str,
        protocol: Protocol,
        connections_n: usize,
    ) -> Result<Self, String> {
        let servers = server_list(servers);
        Ok(match protocol {
            Protocol::Grpc => {
                let mut channels = Vec::new();
                for server in &servers {
                    channels.extend(connections(server, connections_n).await?.iter().cloned());
                }
                // Interleaved, so that consecutive clients land on different servers.
                let per = connections_n.max(1);
                let n = servers.len();
                let interleaved = (0..channels.len())
                    .map(|i| channels[(i % n) * per + i / n].clone())
                    .collect();
                Transport::Grpc(Arc::new(interleaved))
            }
            Protocol::Connect | Protocol::Rest => Transport::Http {
                client: http_client()?,
                bases: Arc::new(servers),
            },
        })
    }

    /// A plain HTTP transport to one server.
    pub(crate) fn http(client: reqwest::Client, base: &str) -> Self {
        Transport::Http {
            client,
            bases: Arc::new(vec![base.trim_end_matches('/').to_owned()]),
        }
    }
}

/// `a,b,c` as base URLs without trailing slashes.
pub(crate) fn server_list(servers: &str) -> Vec<String> {
    servers
        .split(',')
        .map(|s| s.trim().trim_end_matches('/').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

pub(crate) fn http_client() -> Result<reqwest::Client, String> {
    crate::grpc_client::http_builder()?
        // HTTP/1.1 with a connection per client, over https too (where ALPN would otherwise
        // choose HTTP/2 and multiplex every client on one connection), so that figures over
        // TLS and in cleartext measure the same thing.
        .http1_only()
        .default_headers(crate::grpc_client::http_headers()?)
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())
}

pub(crate) fn coupon_client(channel: GrpcChannel) -> CouponServiceClient<GrpcChannel> {
    CouponServiceClient::new(channel).max_decoding_message_size(usize::MAX)
}

/// One IssueCoupon over the chosen protocol.
async fn issue_once(
    transport: &Transport,
    protocol: Protocol,
    worker: usize,
    campaign: i64,
) -> Result<String, Outcome> {
    match transport {
        Transport::Grpc(channels) => {
            let mut client = coupon_client(channels[worker % channels.len()].clone());
            match client
                .issue_coupon(IssueCouponRequest {
                    campaign_id: campaign,
                    ..Default::default()
                })
                .await
            {
                Ok(r) => Ok(r.into_inner().coupon_code),
                Err(s) if s.code() == Code::ResourceExhausted => Err(Outcome::Refused("exhausted")),
                Err(s) if s.code() == Code::FailedPrecondition => Err(Outcome::Refused("not_open")),
                Err(s) => Err(Outcome::Failed(format!("{:?}: {}", s.code(), s.message()))),
            }
        }
        Transport::Http { client, bases } => {
            let base = &bases[worker % bases.len()];
            let (url, body) = match protocol {
                Protocol::Connect => (
                    format!("{base}/couponpb.CouponService/IssueCoupon"),
                    format!("{{\"campaignId\":\"{campaign}\"}}"),
                ),
                _ => (
                    format!("{base}/api/v1/campaigns/{campaign}/coupons"),
                    String::new(),
                ),
            };
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| Outcome::Failed(e.to_string()))?;
            let status = response.status().as_u16();
            let body: serde_json::Value = response
                .json()
                .await
                .map_err(|e| Outcome::Failed(format!("status {status}: {e}")))?;
            let field = if protocol == Protocol::Connect {
                "couponCode"
            } else {
                "code"
            };
            match (status, body[field].as_str()) {
                (200 | 201, Some(code)) => Ok(code.to_owned()),
                (429, _) if protocol == Protocol::Connect => Err(Outcome::Refused("exhausted")),
                (409, _) if body["error"]["code"] == "sold_out" => {
                    Err(Outcome::Refused("exhausted"))
                }
                _ => Err(Outcome::Failed(format!("status {status}: {body}"))),
            }
        }
    }
}

/// What a load run found.
pub(crate) struct IssueReport {
    pub summary: Summary,
    pub campaign: i64,
    pub problems: Vec<String>,
}

impl IssueLoad {
    pub(crate) async fn run_command(self) -> ExitCode {
        match self.run().await {
            Ok(report) => {
                println!("{}", report.summary.line());
                if report.problems.is_empty() {
                    println!(
                        "verified: campaign {} holds exactly what was issued",
                        report.campaign
                    );
                    ExitCode::SUCCESS
                } else {
                    for p in &report.problems {
                        eprintln!("CHECK FAILED: {p}");
                    }
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("allot load issue: {e}");
                ExitCode::FAILURE
            }
        }
    }

    pub(crate) async fn run(&self) -> Result<IssueReport, String> {
        let first = server_list(&self.server)
            .into_iter()
            .next()
            .ok_or("--server is empty")?;
        let admin = connections(&first, 1).await?;
        let mut admin = coupon_client(admin[0].clone());
        let campaign = match (self.campaign, self.create) {
            (Some(id), _) => id,
            (None, Some(n)) => create_open_campaign(&mut admin, n).await?,
            (None, None) => return Err("give --campaign ID or --create N".to_owned()),
        };
        let before = admin
            .get_campaign(GetCampaignRequest {
                campaign_id: campaign,
            })
            .await
            .map_err(|s| format!("GetCampaign: {}", s.message()))?
            .into_inner();
        let total = before.campaign.as_ref().map_or(0, |c| c.total_coupons);
        let issued_before = before
            .campaign
            .as_ref()
            .map_or(0, |c| usize::try_from(c.issued_coupons).unwrap_or(0));

        let transport = Transport::new(&self.server, self.protocol, self.connections).await?;
        let received: Arc<Vec<Mutex<Vec<String>>>> = Arc::new(
            (0..self.concurrency)
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
        );
        let budget = match self.seconds {
            Some(s) => Budget::Duration(Duration::from_secs(s)),
            None => Budget::Requests(self.requests),
        };
        let label = format!("IssueCoupon {:?}", self.protocol).to_lowercase();
        let summary = {
            let received = received.clone();
            let protocol = self.protocol;
            load::run(
                &label,
                self.concurrency,
                budget,
                !self.no_progress,
                move |worker, _| {
                    let transport = transport.clone();
                    let received = received.clone();
                    async move {
                        match issue_once(&transport, protocol, worker, campaign).await {
                            Ok(code) => {
                                received[worker].lock().expect("codes").push(code);
                                Outcome::Ok
                            }
                            Err(outcome) => outcome,
                        }
                    }
                },
            )
            .await
        };

        // Verify against the campaign as the server now lists it: page by page (GetCampaign
        // answers only the first GET_CAMPAIGN_CODES_MAX codes).
        let after = listed_codes(&first, campaign).await?;
        let listed: HashSet<&String> = after.iter().collect();
        let mut problems = Vec::new();
        let got: Vec<String> = received
            .iter()
            .flat_map(|m| std::mem::take(&mut *m.lock().expect("codes")))
            .collect();
        let distinct: HashSet<&String> = got.iter().collect();
        if distinct.len() != got.len() {
            problems.push(format!(
                "{} codes were handed out more than once",
                got.len() - distinct.len()
            ));
        }
        if listed.len() != after.len() {
            problems.push("the campaign lists a code twice".to_owned());
        }
        let missing = got.iter().filter(|c| !listed.contains(c)).count();
        if missing > 0 {
            problems.push(format!("{missing} received codes are not in the campaign"));
        }
        let expected = (total as usize).min(issued_before + summary.ok as usize);
        if after.len() != expected {
            problems.push(format!(
                "the campaign holds {} codes; expected min(total {total}, {issued_before} before + {} issued) = {expected}",
                after.len(),
                summary.ok
            ));
        }
        if summary.failed > 0 {
            problems.push(format!(
                "{} requests failed, first: {:?}",
                summary.failed, summary.first_failure
            ));
        }
        Ok(IssueReport {
            summary,
            campaign,
            problems,
        })
    }
}

/// Every code of the campaign in issue order, from the paged REST listing of `base`.
async fn listed_codes(base: &str, campaign: i64) -> Result<Vec<String>, String> {
    const PAGE: u32 = 10_000;
    let client = http_client()?;
    let mut codes = Vec::new();
    let mut after = 0i64;
    loop {
        let url = format!("{base}/api/v1/campaigns/{campaign}/coupons?after={after}&limit={PAGE}");
        let response = client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("listing the campaign's codes: {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "listing the campaign's codes: status {}",
                response.status()
            ));
        }
        let page: serde_json::Value = response
            .json()
            .await
            .map_err(|e| format!("listing the campaign's codes: {e}"))?;
        for c in page["coupons"].as_array().into_iter().flatten() {
            if let Some(code) = c["code"].as_str() {
                codes.push(code.to_owned());
            }
        }
        match page["next_after"].as_i64() {
            Some(n) => after = n,
            None => return Ok(codes),
        }
    }
}

pub(crate) async fn create_open_campaign(
    client: &mut CouponServiceClient<GrpcChannel>,
    total: i64,
) -> Result<i64, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?;
    client
        .create_campaign(CreateCampaignRequest {
            name: format!("load test of {total}"),
            start_time: Some(allot_server::pb::Timestamp {
                seconds: now.as_secs() as i64 - 1,
                nanos: 0,
            }),
            total_coupons: total,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().campaign_id)
        .map_err(|s| format!("CreateCampaign: {}", s.message()))
}

/// The hello-world of each protocol's stack: gRPC health Check, or `GET /health`.
pub(crate) async fn hello(
    transport: &Transport,
    concurrency: usize,
    seconds: u64,
    progress: bool,
) -> Summary {
    match transport {
        Transport::Grpc(channels) => {
            crate::bench::grpc_hello(channels, concurrency, seconds, progress).await
        }
        Transport::Http { client, bases } => {
            let client = client.clone();
            let urls: Vec<String> = bases.iter().map(|b| format!("{b}/health")).collect();
            load::run(
                "HTTP hello-world (GET /health)",
                concurrency,
                Budget::Duration(Duration::from_secs(seconds)),
                progress,
                move |worker, _| {
                    let request = client.get(&urls[worker % urls.len()]);
                    async move {
                        match request.send().await {
                            Ok(r) if r.status().is_success() => match r.bytes().await {
                                Ok(_) => Outcome::Ok,
                                Err(e) => Outcome::Failed(e.to_string()),
                            },
                            Ok(r) => Outcome::Failed(format!("status {}", r.status())),
                            Err(e) => Outcome::Failed(e.to_string()),
                        }
                    }
                },
            )
            .await
        }
    }
}
