//! What keeps a stdio server's processes, which run as the gateway's user, out of the gateway
//! itself.

use std::sync::Once;

/// Makes the gateway non-dumpable, once, before its first child starts: its `/proc/<pid>` files
/// (`environ`, where the provider keys may be; `mem`) then belong to root, and processes of the
/// same user can neither read them nor attach to it. Core dumps are off from then on.
pub(super) fn hide_gateway_from_children() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl(PR_SET_DUMPABLE) takes plain integers and changes only a process flag.
        let done = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } == 0;
        if !done {
            tracing::warn!("cannot make the gateway non-dumpable: stdio MCP servers running as its user may read its environment");
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_gateway_is_not_dumpable_once_a_child_may_start() {
        super::hide_gateway_from_children();
        // SAFETY: prctl(PR_GET_DUMPABLE) only reads a process flag.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }, 0);
    }
}
