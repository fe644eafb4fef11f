//! `mcp-tool-pin`'s judgement of a `tools/list` answer: each tool's definition against its pin,
//! and the scan; what is not trusted is dropped (`hide`) or kept with a warning (`warn`), and
//! what was found is remembered for the tool's calls.

use serde_json::{Map, Value};

use super::definition::{definition, hash};
use super::scan::ToolNames;
use super::store::Pinned;
use super::{Mode, OnChange, ToolPin};
use crate::list_filter::{Judged, ListJudge, Target};
use tollgate_plugin_api::config::FailureMode;

/// What the last listing found of a tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Its definition is the pinned (or locked) one.
    Trusted,
    /// Another definition is pinned.
    Changed {
        /// The pinned hash.
        pinned: String,
        /// The hash of what the server lists now.
        seen: String,
    },
    /// It is not in the lock file (mode `lock`), or a call names a tool never pinned.
    Unknown {
        /// The hash of what the server lists (empty: never listed).
        seen: String,
    },
    /// The scan found something in its definition.
    Suspicious {
        /// What the scan found.
        finding: String,
    },
    /// Not pinned, and the store cannot keep new pins (`failure_mode = "closed"`).
    Unpinned,
}

impl Status {
    /// The reason of refusals and warnings; `None` when trusted.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Status::Trusted => None,
            Status::Changed { .. } => Some("pin.changed"),
            Status::Unknown { .. } => Some("pin.unknown"),
            Status::Suspicious { .. } => Some("pin.suspicious"),
            Status::Unpinned => Some("pin.store_unavailable"),
        }
    }

    /// Whether `on_change = "warn"` lets it through (a change or an unknown tool; never a
    /// suspicious one, nor one the store could not pin while failing closed).
    pub fn is_change(&self) -> bool {
        matches!(self, Status::Changed { .. } | Status::Unknown { .. })
    }

    /// Why a call is refused, after "tool `x` ".
    pub fn refusal(&self) -> &'static str {
        match self {
            Status::Trusted => "is trusted",
            Status::Changed { .. } => "changed since it was approved",
            Status::Unknown { .. } => "is not an approved tool",
            Status::Suspicious { .. } => "has a suspicious definition",
            Status::Unpinned => "cannot be pinned now (the pin store is unavailable)",
        }
    }

    /// The audit detail: the hashes, or what the scan found.
    pub fn detail(&self) -> Option<String> {
        match self {
            Status::Changed { pinned, seen } => Some(format!("pinned {pinned}, listed {seen}")),
            Status::Unknown { seen } if !seen.is_empty() => Some(format!("listed {seen}")),
            Status::Suspicious { finding } => Some(finding.clone()),
            _ => None,
        }
    }
}

/// The judge of one exchange's list answers.
pub struct PinJudge<'a> {
    pin: &'a ToolPin,
    route: &'a str,
    warnings: Vec<&'static str>,
    notes: Vec<String>,
}

impl<'a> PinJudge<'a> {
    /// A judge for `route`'s answers.
    pub fn new(pin: &'a ToolPin, route: &'a str) -> Self {
        Self {
            pin,
            route,
            warnings: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The reasons of the tools it did not trust (for the request's warnings).
    pub fn take_warnings(&mut self) -> Vec<&'static str> {
        std::mem::take(&mut self.warnings)
    }

    /// Which tools it did not trust and why, with the hashes (for the audit record).
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// What `tool` is now; `names` are the tools of the same list (when the scan runs).
    fn status(&self, name: &str, tool: &Value, names: Option<&ToolNames>) -> Status {
        let finding = self
            .pin
            .scanner
            .as_ref()
            .zip(names)
            .and_then(|(scanner, names)| scanner.scan(tool, names));
        if let Some(finding) = finding {
            return Status::Suspicious {
                finding: finding.to_string(),
            };
        }
        let seen = hash(tool);
        match self.pin.mode {
            Mode::Lock => match self.pin.lock.hash(self.route, name) {
                Some(locked) if locked == seen => Status::Trusted,
                Some(locked) => Status::Changed {
                    pinned: locked.to_string(),
                    seen,
                },
                None => Status::Unknown { seen },
            },
            Mode::Tofu => match self
                .pin
                .store
                .pin(self.route, name, &seen, || definition(tool))
            {
                Pinned::Same => Status::Trusted,
                Pinned::New => {
                    tracing::info!(route = self.route, tool = name, hash = %seen, "mcp-tool-pin pinned a tool");
                    Status::Trusted
                }
                Pinned::Other(pinned) => Status::Changed { pinned, seen },
                Pinned::Unavailable => match self.pin.failure_mode {
                    FailureMode::Open => Status::Trusted,
                    FailureMode::Closed => Status::Unpinned,
                },
            },
        }
    }
}

impl ListJudge for PinJudge<'_> {
    fn judge(&mut self, target: Target, result: &mut Map<String, Value>) -> Judged {
        if target != Target::Tool {
            return Judged::Unchanged;
        }
        let Some(Value::Array(tools)) = result.get_mut("tools") else {
            return Judged::Unchanged;
        };
        let names: Vec<String> = tools
            .iter()
            .map(|t| {
                t.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        // Built only when the scan runs: one automaton for the whole list.
        let index = self
            .pin
            .scanner
            .as_ref()
            .map(|_| ToolNames::new(&name_refs));
        let mut keep = Vec::with_capacity(tools.len());
        let mut statuses = Vec::with_capacity(tools.len());
        for (tool, name) in tools.iter().zip(&name_refs) {
            let status = self.status(name, tool, index.as_ref());
            let kept = match status.reason() {
                None => true,
                Some(reason) => {
                    self.warnings.push(reason);
                    self.notes.push(match status.detail() {
                        Some(detail) => format!("{reason} {name}: {detail}"),
                        None => format!("{reason} {name}"),
                    });
                    tracing::warn!(
                        route = self.route,
                        tool = name,
                        reason,
                        detail = status.detail().unwrap_or_default(),
                        "mcp-tool-pin does not trust a tool"
                    );
                    self.pin.on_change == OnChange::Warn && status.is_change()
                }
            };
            keep.push(kept);
            statuses.push(((self.route.to_string(), name.to_string()), status));
        }
        if let Ok(mut seen) = self.pin.seen.lock() {
            seen.extend(statuses);
        }
        let before = tools.len();
        let mut kept = keep.into_iter();
        tools.retain(|_| kept.next().unwrap_or(false));
        (tools.len() != before).into()
    }
}
