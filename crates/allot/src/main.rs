use std::process::ExitCode;

fn main() -> ExitCode {
    allot::main()
}
