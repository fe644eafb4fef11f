//! Size limits that the gateway and the plugins share, defined once so that what one holds back
//! the next can hold too.

/// Longest response body held whole to be read: a JSON answer the gateway reads for usage, and
/// an answer `prompt-guard` checks or `mcp-rbac` filters. `max_tokens` and tool catalogs keep
/// real answers far below it; past it an answer is not grown into memory without a bound.
pub const MAX_HELD_ANSWER: usize = 8 << 20;

/// Longest single SSE event held while its end is awaited (for usage, checks or filters). A
/// longer event cannot be read without holding it whole: the gateway skips it, the plugins stop
/// the stream with an error.
pub const MAX_HELD_EVENT: usize = 1 << 20;
