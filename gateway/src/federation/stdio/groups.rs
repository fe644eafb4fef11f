//! The process groups of every stdio server process alive, so that the gateway ends them all
//! (their children too) when it exits, whatever configuration they came from.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

static LIVE: LazyLock<Mutex<HashSet<i32>>> = LazyLock::new(Mutex::default);
/// Set once the gateway ends them all.
static ENDING_ALL: AtomicBool = AtomicBool::new(false);

/// Whether the gateway is ending every process (it is exiting).
pub(super) fn ending_all() -> bool {
    ENDING_ALL.load(Ordering::Relaxed)
}

/// Records a process group.
pub(super) fn add(group: i32) {
    if let Ok(mut live) = LIVE.lock() {
        live.insert(group);
    }
}

/// Forgets a process group whose leader has been reaped.
pub(super) fn remove(group: i32) {
    if let Ok(mut live) = LIVE.lock() {
        live.remove(&group);
    }
}

/// Sends `signal` to every process of `group`; whether any was there.
pub(super) fn signal(group: i32, signal: i32) -> bool {
    if group <= 1 {
        return false;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; it touches no memory.
    unsafe { libc::kill(-group, signal) == 0 }
}

/// Ends every recorded group: SIGTERM, then SIGKILL to what is left after `grace`. Called once
/// the gateway has drained, before it exits.
pub fn end_all(grace: Duration) {
    ENDING_ALL.store(true, Ordering::Relaxed);
    let groups: Vec<i32> = match LIVE.lock() {
        Ok(live) => live.iter().copied().collect(),
        Err(_) => return,
    };
    if groups.is_empty() {
        return;
    }
    tracing::info!(
        processes = groups.len(),
        "ending stdio MCP server processes"
    );
    for &group in &groups {
        signal(group, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    // Signal 0 only asks whether anyone is left in the group.
    while Instant::now() < deadline && groups.iter().any(|&g| signal(g, 0)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &group in &groups {
        signal(group, libc::SIGKILL);
    }
}
