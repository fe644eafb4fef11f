//! Durations and sizes in the configuration; shared with plugins (see `tollgate_plugin_api::units`).

pub use tollgate_plugin_api::units::{parse_duration, parse_size, ByteSize, DurationStr};
