//! SIGKILL during a campaign rush: nothing handed out is lost, nothing extra appears, and
//! issuing resumes up to exactly the total. On the suite's backend: on PostgreSQL only `allot`
//! is killed, the database keeps running.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use allot_server::pb::couponpb::{GetCampaignRequest, IssueCouponRequest};
use tonic::Code;

use crate::helpers::{ProcessBackend, all_campaign_codes, channels, coupon_client, open_campaign};

const TOTAL: i64 = 50_000;

/// Issues from `clients` tasks until sold out, `stop` is raised or the server goes away.
async fn rush(
    addr: std::net::SocketAddr,
    id: i64,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> (Vec<String>, bool) {
    let channels = channels(addr, 8).await;
    let tasks = (0..clients).map(|i| {
        let mut client = coupon_client(channels[i % channels.len()].clone());
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match client
                    .issue_coupon(IssueCouponRequest {
                        campaign_id: id,
                        ..Default::default()
                    })
                    .await
                {
                    Ok(r) => mine.push(r.into_inner().coupon_code),
                    Err(s) if s.code() == Code::ResourceExhausted => return (mine, true),
                    Err(_) => break,
                }
            }
            (mine, false)
        })
    });
    let mut codes = Vec::new();
    let mut sold_out = false;
    for t in futures::future::join_all(tasks).await {
        let (mine, done) = t.unwrap();
        codes.extend(mine);
        sold_out |= done;
    }
    (codes, sold_out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_rush_loses_nothing_and_issuing_resumes_to_exactly_the_total() {
    let backend = ProcessBackend::new();
    let mut server = backend.start();
    let id = open_campaign(
        &mut coupon_client(crate::helpers::channel(server.addr).await),
        TOTAL,
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(rush(server.addr, id, 64, stop.clone()));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let (before, sold_out) = load.await.unwrap();
    assert!(
        !sold_out,
        "the campaign sold out before the kill; make it larger"
    );
    assert!(
        before.len() >= 100,
        "too little issued before the kill: {}",
        before.len()
    );

    let server = backend.start();
    let mut client = coupon_client(crate::helpers::channel(server.addr).await);
    let got = client
        .get_campaign(GetCampaignRequest { campaign_id: id })
        .await
        .unwrap()
        .into_inner();
    // GetCampaign answers at most GET_CAMPAIGN_CODES_MAX codes; the listing pages all.
    let codes = all_campaign_codes(&server.url(), id).await;
    let listed: HashSet<&String> = codes.iter().collect();
    let lost: Vec<_> = before.iter().filter(|c| !listed.contains(c)).collect();
    assert!(lost.is_empty(), "{} acknowledged codes lost", lost.len());
    assert!(codes.len() as i64 <= TOTAL);
    assert_eq!(got.campaign.unwrap().issued_coupons, codes.len() as i64);

    let (after, sold_out) = rush(server.addr, id, 64, Arc::new(AtomicBool::new(false))).await;
    assert!(sold_out);
    let got = client
        .get_campaign(GetCampaignRequest { campaign_id: id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.campaign.unwrap().issued_coupons, TOTAL);
    let codes = all_campaign_codes(&server.url(), id).await;
    assert_eq!(
        codes.len() as i64,
        TOTAL,
        "issuing resumes to exactly the total"
    );
    let all: HashSet<&String> = codes.iter().collect();
    assert_eq!(all.len() as i64, TOTAL, "all codes distinct");
    assert!(before.iter().chain(after.iter()).all(|c| all.contains(c)));
}
