use clap::Subcommand;
use std::process::ExitCode;
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    Discount,
}
impl BenchCommand {
    pub(crate) async fn run(self) -> ExitCode {
        ExitCode::SUCCESS
    }
}
