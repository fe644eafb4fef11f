//! What the gateway read of a whole JSON answer on an LLM route (a Messages API answer), handed
//! to the route's plugins with the body's last chunk ([`crate::ResponseChunk::json_answer`]) so
//! that no plugin parses the answer again: the gateway reads it anyway, for its model and usage.

use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// A whole JSON answer and where its text blocks' texts are.
pub struct JsonAnswer {
    body: Bytes,
    /// The JSON strings (quotes included) of `content[].text`, in order.
    texts: Vec<Range<usize>>,
}

/// The top-level fields the gateway reads, each `None` when absent or `null`.
#[derive(Debug)]
pub struct AnswerFields {
    /// `model`.
    pub model: Option<Value>,
    /// `usage`.
    pub usage: Option<Value>,
}

#[derive(Deserialize)]
struct AnswerRef<'a> {
    #[serde(default)]
    model: Option<Value>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(borrow, default)]
    content: Vec<BlockRef<'a>>,
}

#[derive(Deserialize)]
struct BlockRef<'a> {
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
}

impl JsonAnswer {
    /// Reads `body`, a whole answer: its fields and where its texts are (an answer without
    /// `content`, such as an error, has none). `None` when it is not a JSON object, its
    /// `content` is not an array of blocks, a key is given twice, or a string read is not UTF-8:
    /// the caller reads such a body its own way.
    pub fn read(body: Bytes) -> Option<(Self, AnswerFields)> {
        // serde would read an array into the struct too, field by field.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return None;
        }
        let answer: AnswerRef<'_> = serde_json::from_slice(&body).ok()?;
        let start = body.as_ptr() as usize;
        let texts = answer
            .content
            .iter()
            .filter_map(|block| block.text)
            // A `text` that is not a string is no text (a detector has nothing to read in it).
            .filter(|raw| raw.get().starts_with('"'))
            .filter_map(|raw| {
                let at = (raw.get().as_ptr() as usize).checked_sub(start)?;
                Some(at..at + raw.get().len())
            })
            .collect();
        let fields = AnswerFields {
            model: answer.model,
            usage: answer.usage,
        };
        Some((Self { body, texts }, fields))
    }

    /// The answer as the upstream sent it.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The `text` of each of its `content` blocks that has one, as the JSON string it is in the
    /// body (quotes and escapes included; decode with [`crate::sse::json_string`]).
    pub fn texts(&self) -> impl Iterator<Item = &str> + '_ {
        self.texts
            .iter()
            .filter_map(|range| std::str::from_utf8(self.body.get(range.clone())?).ok())
    }
}

impl std::fmt::Debug for JsonAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The answer's text is the caller's business, not a log line's.
        f.debug_struct("JsonAnswer")
            .field("body_len", &self.body.len())
            .field("texts", &self.texts.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::json_string;

    fn texts(body: &str) -> Option<Vec<String>> {
        let (answer, _) = JsonAnswer::read(Bytes::copy_from_slice(body.as_bytes()))?;
        Some(
            answer
                .texts()
                .map(|raw| json_string(raw).unwrap().into_owned())
                .collect(),
        )
    }

    #[test]
    fn the_texts_of_text_blocks_are_found_in_order() {
        let body = r#"{"id":"m1","model":"claude","content":[{"type":"text","text":"one \"1\""},{"type":"tool_use","input":{"text":"not a block's"}},{"type":"text","text":"two\u00e9"}],"usage":{"input_tokens":3,"output_tokens":4}}"#;
        assert_eq!(texts(body).unwrap(), ["one \"1\"", "twoé"]);
        let (_, fields) = JsonAnswer::read(Bytes::from(body)).unwrap();
        assert_eq!(fields.model, Some(Value::from("claude")));
        assert_eq!(fields.usage.unwrap()["output_tokens"], 4);
    }

    #[test]
    fn answers_of_other_shapes_are_left_to_the_caller() {
        assert_eq!(
            texts(r#"{"type":"error","error":{"type":"x"}}"#)
                .unwrap()
                .len(),
            0
        );
        assert_eq!(
            texts(r#"{"content":[{"text":7},{"text":null}]}"#)
                .unwrap()
                .len(),
            0
        );
        assert!(texts(r#"{"content":"a string"}"#).is_none());
        assert!(texts(r#"{"content":[],"content":[{"text":"x"}]}"#).is_none());
        assert!(texts(r#"[1, 2]"#).is_none());
        assert!(
            JsonAnswer::read(Bytes::from_static(b"{\"content\":[{\"text\":\"\xff\"}]}")).is_none()
        );
    }
}
