//! The `webhook` rule: the extracted texts go to an operator's own classifier (a guard model
//! behind HTTP), which says whether the request is flagged.
//!
//! Request: `POST <url>` with `{"route": ..., "kind": "llm" | "mcp", "texts": [...]}`.
//! Answer: `{"flagged": true | false, "category": "..."}` (`category` optional, for messages).

use std::time::Duration;
use tollgate_plugin_api::config::FailureMode;

use serde::Deserialize;
use serde_json::json;

/// A classifier endpoint.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Its URL.
    pub url: String,
    /// Longest wait for its answer.
    pub timeout: Duration,
    /// What a failure means.
    pub failure_mode: FailureMode,
    client: reqwest::Client,
}

/// The classifier's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classification {
    /// Nothing found.
    Clean,
    /// Flagged, with the category the classifier named.
    Flagged(Option<String>),
}

#[derive(Debug, Deserialize)]
struct Answer {
    flagged: bool,
    category: Option<String>,
}

impl Webhook {
    /// A webhook rule for `url`.
    pub fn new(url: String, timeout: Duration, failure_mode: FailureMode) -> Result<Self, String> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("webhook `{url}` is not an http(s) URL"));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        Ok(Self {
            url,
            timeout,
            failure_mode,
            client,
        })
    }

    /// Asks the classifier about `texts`.
    pub async fn classify(
        &self,
        route: &str,
        kind: &str,
        texts: &[String],
    ) -> Result<Classification, String> {
        let body = json!({"route": route, "kind": kind, "texts": texts});
        let response = self
            .client
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("classifier answered HTTP {}", response.status()));
        }
        let answer: Answer = response
            .json()
            .await
            .map_err(|e| format!("classifier answer is not {{\"flagged\": bool}}: {e}"))?;
        Ok(if answer.flagged {
            Classification::Flagged(answer.category)
        } else {
            Classification::Clean
        })
    }
}
