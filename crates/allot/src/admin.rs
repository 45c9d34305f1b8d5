//! `allot admin`: operations on a data directory.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Copy the embedded database to a new file, safely while the server runs. To restore:
    /// stop the server, put the copy in place of DATA_DIR/allot.db (remove allot.db-wal and
    /// allot.db-shm), start the server
    Backup {
        /// The server's data directory
        #[arg(long, env = "ALLOT_DATA_DIR", default_value = "./allot-data")]
        data_dir: PathBuf,
        /// The backup file to create (must not exist)
        #[arg(long)]
        out: PathBuf,
    },
}

impl AdminCommand {
    pub(crate) async fn run(self) -> ExitCode {
        match self {
            AdminCommand::Backup { data_dir, out } => {
                let target = out.clone();
                let done = tokio::task::spawn_blocking(move || {
                    allot_storage::SqliteStore::backup(&data_dir, &target)
                })
                .await;
                match done {
                    Ok(Ok(bytes)) => {
                        println!(
                            "backup written to {} ({bytes} bytes), integrity ok",
                            out.display()
                        );
                        ExitCode::SUCCESS
                    }
                    Ok(Err(e)) => {
                        eprintln!("allot admin backup: {e}");
                        ExitCode::FAILURE
                    }
                    Err(e) => {
                        eprintln!("allot admin backup: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
        }
    }
}
