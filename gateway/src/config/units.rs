//! Durations and sizes in the configuration; shared with plugins (see `tollgate_plugins::units`).

pub use tollgate_plugins::units::{parse_duration, parse_size, ByteSize, DurationStr};
