//! `mcp-tool-pin` (in the making): what a tool's definition is and when it is suspicious. The
//! plugin that pins definitions and hides changed or suspicious tools builds on these.

pub mod definition;
pub mod scan;
