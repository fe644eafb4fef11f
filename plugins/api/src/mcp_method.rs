//! The MCP methods the gateway and the built-in plugins tell apart, named once.

use std::fmt;

/// An MCP JSON-RPC method. The methods something in the gateway or the built-ins treats
/// specially have a variant; any other method is kept as [`McpMethod::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum McpMethod {
    /// `initialize`.
    Initialize,
    /// `ping`.
    Ping,
    /// `tools/list`.
    ToolsList,
    /// `tools/call`.
    ToolsCall,
    /// `prompts/list`.
    PromptsList,
    /// `prompts/get`.
    PromptsGet,
    /// `resources/list`.
    ResourcesList,
    /// `resources/read`.
    ResourcesRead,
    /// `resources/templates/list`.
    ResourcesTemplatesList,
    /// `resources/subscribe`.
    ResourcesSubscribe,
    /// `resources/unsubscribe`.
    ResourcesUnsubscribe,
    /// `completion/complete`.
    CompletionComplete,
    /// `logging/setLevel`.
    LoggingSetLevel,
    /// `notifications/initialized`.
    NotificationsInitialized,
    /// `notifications/cancelled`.
    NotificationsCancelled,
    /// `notifications/progress`.
    NotificationsProgress,
    /// `notifications/roots/list_changed`.
    NotificationsRootsListChanged,
    /// `sampling/createMessage`.
    SamplingCreateMessage,
    /// `elicitation/create`.
    ElicitationCreate,
    /// `server/discover` (MCP 2026-07-28).
    ServerDiscover,
    /// `subscriptions/listen` (MCP 2026-07-28).
    SubscriptionsListen,
    /// Any other method, as sent.
    Other(String),
}

/// Every named method, for `parse` and tests.
const NAMED: [McpMethod; 21] = [
    McpMethod::Initialize,
    McpMethod::Ping,
    McpMethod::ToolsList,
    McpMethod::ToolsCall,
    McpMethod::PromptsList,
    McpMethod::PromptsGet,
    McpMethod::ResourcesList,
    McpMethod::ResourcesRead,
    McpMethod::ResourcesTemplatesList,
    McpMethod::ResourcesSubscribe,
    McpMethod::ResourcesUnsubscribe,
    McpMethod::CompletionComplete,
    McpMethod::LoggingSetLevel,
    McpMethod::NotificationsInitialized,
    McpMethod::NotificationsCancelled,
    McpMethod::NotificationsProgress,
    McpMethod::NotificationsRootsListChanged,
    McpMethod::SamplingCreateMessage,
    McpMethod::ElicitationCreate,
    McpMethod::ServerDiscover,
    McpMethod::SubscriptionsListen,
];

impl McpMethod {
    /// The method as it is written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            McpMethod::Initialize => "initialize",
            McpMethod::Ping => "ping",
            McpMethod::ToolsList => "tools/list",
            McpMethod::ToolsCall => "tools/call",
            McpMethod::PromptsList => "prompts/list",
            McpMethod::PromptsGet => "prompts/get",
            McpMethod::ResourcesList => "resources/list",
            McpMethod::ResourcesRead => "resources/read",
            McpMethod::ResourcesTemplatesList => "resources/templates/list",
            McpMethod::ResourcesSubscribe => "resources/subscribe",
            McpMethod::ResourcesUnsubscribe => "resources/unsubscribe",
            McpMethod::CompletionComplete => "completion/complete",
            McpMethod::LoggingSetLevel => "logging/setLevel",
            McpMethod::NotificationsInitialized => "notifications/initialized",
            McpMethod::NotificationsCancelled => "notifications/cancelled",
            McpMethod::NotificationsProgress => "notifications/progress",
            McpMethod::NotificationsRootsListChanged => "notifications/roots/list_changed",
            McpMethod::SamplingCreateMessage => "sampling/createMessage",
            McpMethod::ElicitationCreate => "elicitation/create",
            McpMethod::ServerDiscover => "server/discover",
            McpMethod::SubscriptionsListen => "subscriptions/listen",
            McpMethod::Other(method) => method,
        }
    }

    /// The method named `method`; a named method is found without allocating, only an
    /// [`Other`](McpMethod::Other) copies the text.
    pub fn parse(method: &str) -> Self {
        NAMED
            .iter()
            .find(|named| named.as_str() == method)
            .cloned()
            .unwrap_or_else(|| McpMethod::Other(method.to_string()))
    }

    /// The `params` key that names what the message acts on: `name` for `tools/call` and
    /// `prompts/get`, `uri` for `resources/read` and `resources/subscribe`
    /// ([`McpMessage::target`](crate::McpMessage::target) holds its value).
    pub fn target_param(&self) -> Option<&'static str> {
        match self {
            McpMethod::ToolsCall | McpMethod::PromptsGet => Some("name"),
            McpMethod::ResourcesRead | McpMethod::ResourcesSubscribe => Some("uri"),
            _ => None,
        }
    }

    /// Whether this is `tools/call`.
    pub fn is_tool_call(&self) -> bool {
        matches!(self, McpMethod::ToolsCall)
    }
}

impl fmt::Display for McpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for McpMethod {
    fn from(method: &str) -> Self {
        McpMethod::parse(method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_method_parses_back_to_itself() {
        for method in NAMED {
            assert_eq!(McpMethod::parse(method.as_str()), method);
        }
        assert_eq!(McpMethod::parse("x/y"), McpMethod::Other("x/y".to_string()));
        assert_eq!(McpMethod::parse("x/y").as_str(), "x/y");
    }

    #[test]
    fn targets_are_named_by_their_params_key() {
        assert_eq!(McpMethod::ToolsCall.target_param(), Some("name"));
        assert_eq!(McpMethod::PromptsGet.target_param(), Some("name"));
        assert_eq!(McpMethod::ResourcesRead.target_param(), Some("uri"));
        assert_eq!(McpMethod::ResourcesSubscribe.target_param(), Some("uri"));
        assert_eq!(McpMethod::ToolsList.target_param(), None);
    }
}
