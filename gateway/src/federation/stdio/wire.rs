//! What the gateway changes in messages to and from a stdio process so that many callers can
//! share it: request ids and progress tokens become the process's own, and are given back in
//! what the process sends.

use serde_json::Value;

/// `_meta` key of a `subscriptions/listen` notification naming its listen request.
pub(super) const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// The id a request of a process's own carries toward the gateway's callers: the process's
/// number and its id, so that the answer finds the process whatever session it comes with.
pub(super) fn scope_server_id(number: u64, id: &Value) -> Value {
    Value::String(format!("p{number}:{id}"))
}

/// The process number and original id of an id made by [`scope_server_id`].
pub(super) fn unscope_server_id(id: &Value) -> Option<(u64, Value)> {
    let (number, original) = id.as_str()?.strip_prefix('p')?.split_once(':')?;
    Some((number.parse().ok()?, serde_json::from_str(original).ok()?))
}

/// The progress token of a request, if it asks for progress.
pub(super) fn progress_token(message: &Value) -> Option<&Value> {
    message.pointer("/params/_meta/progressToken")
}

/// Replaces the progress token of a request.
pub(super) fn set_progress_token(message: &mut Value, token: Value) {
    if let Some(slot) = message.pointer_mut("/params/_meta/progressToken") {
        *slot = token;
    }
}

/// The progress token a process's `notifications/progress` names.
pub(super) fn notified_progress_token(message: &Value) -> Option<&str> {
    message.pointer("/params/progressToken")?.as_str()
}

/// The listen request a process's notification belongs to (its `subscriptionId`).
pub(super) fn subscription_of(message: &Value) -> Option<u64> {
    message
        .get("params")?
        .get("_meta")?
        .get(SUBSCRIPTION_ID)?
        .as_u64()
}

/// Whether a notification concerns every caller (a list or a resource changed) rather than
/// the call in flight.
pub(super) fn is_broadcast(method: &str) -> bool {
    method.ends_with("/list_changed") || method == "notifications/resources/updated"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_ids_round_trip_with_their_process() {
        for id in [json!(7), json!("a:b"), json!("p1:2")] {
            let scoped = scope_server_id(12, &id);
            assert_eq!(unscope_server_id(&scoped), Some((12, id)));
        }
        assert_eq!(unscope_server_id(&json!(3)), None);
        assert_eq!(unscope_server_id(&json!("q1:2")), None);
    }

    #[test]
    fn progress_tokens_and_subscriptions_are_found() {
        let mut request = json!({"params": {"_meta": {"progressToken": "mine"}}});
        assert_eq!(progress_token(&request), Some(&json!("mine")));
        set_progress_token(&mut request, json!("tg1"));
        assert_eq!(progress_token(&request), Some(&json!("tg1")));
        let progress = json!({"params": {"progressToken": "tg1", "progress": 1}});
        assert_eq!(notified_progress_token(&progress), Some("tg1"));
        let changed = json!({"params": {"_meta": {SUBSCRIPTION_ID: 4}}});
        assert_eq!(subscription_of(&changed), Some(4));
        assert!(is_broadcast("notifications/tools/list_changed"));
        assert!(!is_broadcast("notifications/message"));
    }
}
