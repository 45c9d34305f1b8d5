//! `allot coupons`: coupon management as a client of a running server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use crate::grpc_client::DEFAULT_SERVER;

#[derive(Debug, Subcommand)]
pub(crate) enum CouponsCommand {
    /// Upload a CSV file of coupons of any size, streamed, with a progress bar. The first line
    /// names the columns code,type,discount_kind,discount_amount,expires_at,max_uses
    Upload {
        file: PathBuf,
        /// Server URL
        #[arg(long, env = "ALLOT_SERVER", default_value = DEFAULT_SERVER)]
        server: String,
    },
}

impl CouponsCommand {
    pub(crate) async fn run(self) -> ExitCode {
        match self {
            CouponsCommand::Upload { file, server } => match upload(file, &server).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("allot coupons upload: {e}");
                    ExitCode::FAILURE
                }
            },
        }
    }
}

async fn upload(file: PathBuf, server: &str) -> Result<(), String> {
    let handle = tokio::fs::File::open(&file)
        .await
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let size = handle.metadata().await.map_err(|e| e.to_string())?.len();
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    let counted = bar.clone();
    let stream = tokio_util::io::ReaderStream::new(handle).inspect(move |chunk| {
        if let Ok(bytes) = chunk {
            counted.inc(bytes.len() as u64);
        }
    });
    bar.set_message("uploading");
    let response = crate::grpc_client::http_builder()?
        .default_headers(crate::grpc_client::http_headers()?)
        .build()
        .map_err(|e| e.to_string())?
        .post(format!(
            "{}/api/v1/coupons/csv",
            server.trim_end_matches('/')
        ))
        .header("content-type", "text/csv")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .map_err(|e| format!("cannot reach {server}: {e}"))?;
    bar.finish_and_clear();
    let status = response.status();
    let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    if status.as_u16() == 201 {
        println!(
            "created {} coupons in {} chunks",
            body["created"], body["chunks"]
        );
        return Ok(());
    }
    let mut report = format!(
        "{status}: {}",
        body["error"]["message"].as_str().unwrap_or("?")
    );
    if let Some(details) = body["error"]["details"].as_array() {
        for d in details.iter().take(50) {
            report.push_str(&format!(
                "\n  row {} ({}): {}",
                d["index"],
                d["field"].as_str().unwrap_or("?"),
                d["message"].as_str().unwrap_or("?")
            ));
        }
        if details.len() > 50 {
            report.push_str(&format!("\n  ... and {} more", details.len() - 50));
        }
    }
    Err(report)
}
