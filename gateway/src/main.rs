//! The stock `tollgate` binary: the built-in plugins only.

fn main() -> std::process::ExitCode {
    tollgate::cli::main(tollgate::Gateway::new())
}
