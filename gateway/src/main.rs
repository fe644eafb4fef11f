//! The stock `tollgate` binary: the built-in plugins only.

use std::ffi::c_char;

/// jemalloc instead of the system allocator: the proxy allocates and frees many small objects
/// per request, and spans and audit records are freed on another thread than the one that made
/// them, where glibc's malloc is slowest (measured: docs/benchmarks.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts (`_RJEM_MALLOC_CONF` in the environment still
/// overrides them). A background thread purges the pages freed after a burst (thousands of
/// connections or streams closed at once) within `dirty_decay_ms`; without it jemalloc purges
/// only when the arena that freed them allocates again, so a gateway going quiet after a burst
/// kept its peak resident set (measured with 3,000 streams: 233 MiB kept after they closed,
/// against 40 MiB when purged).
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: MallocConf = MallocConf(c"background_thread:true".as_ptr());

/// A C string for jemalloc to read.
#[repr(transparent)]
struct MallocConf(*const c_char);

// SAFETY: the pointer is to a static, immutable C string.
unsafe impl Sync for MallocConf {}

fn main() -> std::process::ExitCode {
    tollgate::cli::main(tollgate::Gateway::new())
}
