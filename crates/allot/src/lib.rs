//! The `allot` command: the server (`serve`), its client (`codes`), and load tools (`bench`).

mod admin;
mod admin_client;
mod bench;
mod codes;
mod coupon_load;
mod coupons_cmd;
mod gen_cert;
mod grpc_client;
mod issue_load;
mod load;
mod order_load;
mod promotion_load;
mod sale_load;
mod soak_load;

use std::process::ExitCode;
use std::sync::Arc;

use allot_server::{Application, ServeArgs};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "allot",
    version,
    about = "Hands out scarce things exactly: codes, coupons, sale items, stock."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Credential the client and load commands send (`Authorization: Bearer`): an `ak_` API key
    /// (`allot admin create-api-key`) or an access token. The server itself ignores it
    #[arg(
        long,
        global = true,
        env = "ALLOT_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,

    /// A certificate authority (PEM) the client and load commands trust for an https://
    /// server, besides the system's: a private CA, or the cert.pem of `allot admin gen-cert`
    #[arg(long, global = true, env = "ALLOT_CA_FILE", value_name = "FILE")]
    ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: gRPC, Connect and REST on one port
    Serve(Box<ServeArgs>),
    /// Discount codes, as a client of a running server
    #[command(subcommand)]
    Codes(codes::CodesCommand),
    /// Operations on a data directory (backup)
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Coupon management, as a client of a running server
    #[command(subcommand)]
    Coupons(coupons_cmd::CouponsCommand),
    /// Drive a running server with load, then verify what it did
    #[command(subcommand)]
    Load(LoadCommand),
    /// Measure a running server against its own hello-world ceiling
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[derive(Debug, Subcommand)]
enum LoadCommand {
    /// Campaign issuance: C clients race for a campaign's codes; then checks through
    /// GetCampaign that it holds exactly what was issued. Exits non-zero when a check fails
    Issue(issue_load::IssueLoad),
    /// Coupon management: uploads N coupons, then allocates each to a user and redeems it at
    /// C concurrent clients, beside the HTTP hello-world; verifies every allocation and use
    Coupons(coupon_load::CouponLoad),
    /// Flash sale: a mix of aggressive and casual shoppers checks out and purchases until the
    /// current sale sells out; prints the sell-out time, rates and latencies, then verifies
    #[command(name = "flash-sale")]
    FlashSale(sale_load::SaleLoad),
    /// Orders: C concurrent customers place orders of 3 lines with a coupon for S seconds;
    /// prints rate and latencies, then verifies the orders stored and the stock reserved
    Orders(order_load::OrderLoad),
    /// Promotions: coupon redemption, then hold + redeem through a promotion with a money
    /// budget, beside the HTTP hello-world; C checkouts racing for a budget that covers few;
    /// the preview of a 10-line cart against N active automatic promotions (client and
    /// server latencies). Verifies every budget to the minor unit
    Promotions(promotion_load::PromotionLoad),
    /// Soak: a mixed load (issues, code generate + use, coupon request + redeem, orders,
    /// flash-sale checkout + purchase) at a steady rate for a long time, sampled every 10 s
    /// (latency per operation, throughput, answers, server RSS, open files, database and WAL
    /// sizes) into a CSV; verifies its results and says whether RSS and p99 stayed flat
    Soak(soak_load::SoakLoad),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // One TLS provider for the whole process (ring: see Cargo.toml); every TLS connection, in
    // or out, uses it. Fails only if one is already installed, which is then the same.
    let _ = rustls::crypto::ring::default_provider().install_default();
    grpc_client::set_credential(cli.api_key.clone());
    if let Err(e) = grpc_client::set_ca_file(cli.ca_file.as_deref()) {
        eprintln!("allot: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("allot: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(*args).await,
            Command::Codes(cmd) => cmd.run().await,
            Command::Admin(cmd) => cmd.run().await,
            Command::Coupons(cmd) => cmd.run().await,
            Command::Load(LoadCommand::Issue(load)) => load.run_command().await,
            Command::Load(LoadCommand::Coupons(l)) => load::exit("coupons", l.run().await),
            Command::Load(LoadCommand::FlashSale(l)) => load::exit("flash-sale", l.run().await),
            Command::Load(LoadCommand::Orders(l)) => load::exit("orders", l.run().await),
            Command::Load(LoadCommand::Promotions(l)) => load::exit("promotions", l.run().await),
            Command::Load(LoadCommand::Soak(l)) => load::exit("soak", l.run().await),
            Command::Bench(cmd) => cmd.run().await,
        }
    })
}

async fn serve(args: ServeArgs) -> ExitCode {
    let config = match args.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("allot: {e}");
            return ExitCode::from(2);
        }
    };
    let _log_guard = allot_server::telemetry::init(config.log_format, &config.log_level);
    let clock = Arc::new(allot_server::clock::SystemClock);
    let app = match Application::build(config.clone(), clock).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("allot: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        addr = %app.local_addr(),
        data_dir = %config.data_dir.display(),
        "allot serving gRPC, Connect and REST"
    );
    // Tools and tests read the bound address from this line (useful with port 0).
    println!("allot listening on {}", app.local_addr());
    if let Some(addr) = app.probe_addr() {
        // Cleartext, for probes only: say so where the operator looks.
        println!("allot probes (health, ready, metrics; cleartext) on {addr}");
    }
    if let Some(url) = app.setup_url() {
        // The newcomer's next step, on stdout where the first command shows it, and in the
        // log. Written, not println!: a reader that closed the pipe must not stop the server.
        let line = format!("setup: open {url} to create the first admin (valid for an hour)");
        let mut out = std::io::stdout();
        let _ = std::io::Write::write_all(&mut out, format!("{line}\n").as_bytes())
            .and_then(|()| std::io::Write::flush(&mut out));
        tracing::info!("{line}");
    }
    match app
        .run_until_stopped(allot_server::app::shutdown_signal())
        .await
    {
        Ok(()) => {
            tracing::info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "stopped with an error");
            ExitCode::FAILURE
        }
    }
}
