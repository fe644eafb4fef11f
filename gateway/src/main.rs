//! The stock `tollgate` binary: the built-in plugins only.

/// jemalloc instead of the system allocator: the proxy allocates and frees many small objects
/// per request, and spans and audit records are freed on another thread than the one that made
/// them, where glibc's malloc is slowest (measured: docs/benchmarks.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    tollgate::cli::main(tollgate::Gateway::new())
}
