//! The admin API's side of a plugin: operators act on a plugin instance at run time (approve a
//! tool pin, revoke a key) through `/admin/v1/plugins/<name>/<path>` on the admin listener. The
//! gateway authenticates the caller (`[server] admin_token`), reads the body, audits the call and
//! hands the plugin an [`AdminRequest`]; the plugin answers with an [`AdminResponse`].

use bytes::Bytes;
use http::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// An authenticated admin call addressed to one plugin instance.
#[derive(Debug, Clone)]
pub struct AdminRequest {
    /// The HTTP method.
    pub method: Method,
    /// The path after `/admin/v1/plugins/<name>/`, without a leading `/` (`pins/approve`).
    pub path: String,
    /// The query string, if any, undecoded.
    pub query: Option<String>,
    /// The request body (at most the admin API's body limit).
    pub body: Bytes,
}

impl AdminRequest {
    /// The body as `T`; a body that is not `T`'s JSON is a `400` answer saying why.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, AdminResponse> {
        serde_json::from_slice(&self.body).map_err(|e| {
            AdminResponse::error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("the body is not what `{}` takes: {e}", self.path),
            )
        })
    }

    /// The value of query parameter `name` (the first one), decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_deref()?.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }
}

/// A plugin's answer to an admin call: a JSON body, and what the audit record says of it.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// The JSON body.
    pub body: Value,
    /// What the call changed, for the audit record (never a secret); `None` for reads.
    pub audit: Option<String>,
}

impl AdminResponse {
    /// `200` with `body`.
    pub fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            audit: None,
        }
    }

    /// An error: `{"error": {"code": code, "message": message}}`.
    pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({"error": {"code": code, "message": message.into()}}),
            audit: None,
        }
    }

    /// `404`: the plugin has no such operation.
    pub fn not_found() -> Self {
        Self::error(
            StatusCode::NOT_FOUND,
            "not_found",
            "this plugin has no such admin operation",
        )
    }

    /// The same answer, with `change` in its audit record.
    pub fn with_audit(mut self, change: impl Into<String>) -> Self {
        self.audit = Some(change.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str, body: &str) -> AdminRequest {
        AdminRequest {
            method: Method::POST,
            path: "pins/approve".into(),
            query: Some(query.into()),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn query_parameters_are_decoded_and_bad_bodies_are_400s() {
        let call = request("route=my%20route&tool=gh__x&empty", "{");
        assert_eq!(call.query_param("route").as_deref(), Some("my route"));
        assert_eq!(call.query_param("tool").as_deref(), Some("gh__x"));
        assert_eq!(call.query_param("empty").as_deref(), Some(""));
        assert_eq!(call.query_param("missing"), None);
        let refused = call.json::<Value>().unwrap_err();
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(refused.body["error"]["code"], "invalid_request");
    }
}
