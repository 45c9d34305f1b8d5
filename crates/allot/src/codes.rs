//! `allot codes`: generate and use discount codes against a running server over gRPC.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use allot_server::pb::discount::discount_client::DiscountClient;
use allot_server::pb::discount::{GenerateRequest, UseCodeRequest};
use clap::Subcommand;

use crate::grpc_client::{DEFAULT_SERVER, connect};

#[derive(Debug, Subcommand)]
pub(crate) enum CodesCommand {
    /// Generate new one-time codes; prints them one per line, or writes a CSV file
    Generate {
        /// How many codes, 1 to 2000
        #[arg(long, default_value_t = 2000)]
        count: u32,
        /// Symbols per code, 7 or 8
        #[arg(long, default_value_t = 8)]
        length: u8,
        /// Server URL
        #[arg(long, env = "ALLOT_SERVER", default_value = DEFAULT_SERVER)]
        server: String,
        /// Write the codes to this CSV file (header `code`) instead of standard output
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Use a code once. Exit status: 0 used now, 3 invalid, 4 already used, 1 error
    Use {
        code: String,
        /// Server URL
        #[arg(long, env = "ALLOT_SERVER", default_value = DEFAULT_SERVER)]
        server: String,
    },
}

impl CodesCommand {
    pub(crate) async fn run(self) -> ExitCode {
        match self.execute().await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("allot: {e}");
                ExitCode::FAILURE
            }
        }
    }

    async fn execute(self) -> Result<ExitCode, String> {
        match self {
            CodesCommand::Generate {
                count,
                length,
                server,
                out,
            } => {
                let mut client = DiscountClient::new(connect(&server).await?);
                let response = client
                    .generate(GenerateRequest {
                        count,
                        length: vec![length],
                    })
                    .await
                    .map_err(|s| format!("generate failed: {} ({:?})", s.message(), s.code()))?
                    .into_inner();
                if !response.result {
                    return Err(
                        "the server refused the request: count must be 1 to 2000, length 7 or 8"
                            .to_owned(),
                    );
                }
                let mut text = String::with_capacity(response.codes.len() * 10);
                if out.is_some() {
                    text.push_str("code\n");
                }
                for code in &response.codes {
                    text.push_str(code);
                    text.push('\n');
                }
                match out {
                    Some(path) => {
                        std::fs::write(&path, text)
                            .map_err(|e| format!("writing {}: {e}", path.display()))?;
                        eprintln!("wrote {} codes to {}", response.codes.len(), path.display());
                    }
                    None => std::io::stdout()
                        .write_all(text.as_bytes())
                        .map_err(|e| e.to_string())?,
                }
                Ok(ExitCode::SUCCESS)
            }
            CodesCommand::Use { code, server } => {
                let mut client = DiscountClient::new(connect(&server).await?);
                let response = client
                    .use_code(UseCodeRequest { code: code.clone() })
                    .await
                    .map_err(|s| format!("use failed: {} ({:?})", s.message(), s.code()))?
                    .into_inner();
                match response.result.as_slice() {
                    [0] => {
                        println!("ok: {} used now", code.trim().to_ascii_uppercase());
                        Ok(ExitCode::SUCCESS)
                    }
                    [1] => {
                        println!("invalid: no such code");
                        Ok(ExitCode::from(3))
                    }
                    [2] => {
                        println!("already used");
                        Ok(ExitCode::from(4))
                    }
                    other => Err(format!("unexpected result {other:?}")),
                }
            }
        }
    }
}
