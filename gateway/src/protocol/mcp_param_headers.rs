//! MCP 2026-07-28 `Mcp-Param-*` headers: a tool's input schema marks properties with
//! `x-mcp-header: "<Token>"`, a client mirrors those arguments of a `tools/call` into
//! `Mcp-Param-<Token>` headers, and the server that takes the HTTP request checks that headers
//! and body agree. The gateway is that server for stdio MCP servers (which see no headers).

use http::HeaderMap;
use serde_json::{Map, Value};

use super::mcp_headers::decode_value;

/// The schema annotation naming a property's header.
const ANNOTATION: &str = "x-mcp-header";
/// The header name's prefix.
const PREFIX: &str = "mcp-param-";
/// Schema keywords whose value is one subschema (JSON Schema 2020-12 applicators).
const SUBSCHEMA_SINGLE: [&str; 11] = [
    "items",
    "contains",
    "unevaluatedItems",
    "additionalProperties",
    "propertyNames",
    "unevaluatedProperties",
    "not",
    "if",
    "then",
    "else",
    "contentSchema",
];
/// Keywords whose value is a list of subschemas.
const SUBSCHEMA_LIST: [&str; 4] = ["allOf", "anyOf", "oneOf", "prefixItems"];
/// Keywords whose value maps names to subschemas.
const SUBSCHEMA_MAP: [&str; 4] = [
    "patternProperties",
    "dependentSchemas",
    "$defs",
    "definitions",
];

/// One annotated property: where it is in the arguments, its header token and declared type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    /// The chain of `properties` keys from the root.
    pub path: Vec<String>,
    /// The `x-mcp-header` token (the header is `Mcp-Param-<token>`).
    pub token: String,
    /// The property's `type`.
    pub kind: String,
}

/// The annotated properties of a tool's input schema; `None` when an annotation is invalid (a
/// conforming client then drops the tool and sends no headers: nothing is checked).
pub fn annotations(schema: &Value) -> Option<Vec<ParamHeader>> {
    let mut found = Vec::new();
    let mut stack: Vec<(Option<Vec<String>>, &Value)> = vec![(Some(Vec::new()), schema)];
    while let Some((path, node)) = stack.pop() {
        let Value::Object(schema) = node else {
            continue;
        };
        if let Some(token) = schema.get(ANNOTATION) {
            let path = path.clone().filter(|p| !p.is_empty())?;
            let token = token.as_str().filter(|t| is_token(t))?;
            let kind = schema
                .get("type")
                .and_then(Value::as_str)
                .filter(|t| matches!(*t, "string" | "integer" | "boolean"))?;
            let duplicate = found
                .iter()
                .any(|f: &ParamHeader| f.token.eq_ignore_ascii_case(token));
            if duplicate {
                return None;
            }
            found.push(ParamHeader {
                path,
                token: token.to_string(),
                kind: kind.to_string(),
            });
        }
        push_subschemas(schema, path.as_ref(), &mut stack);
    }
    Some(found)
}

fn push_subschemas<'a>(
    schema: &'a Map<String, Value>,
    path: Option<&Vec<String>>,
    stack: &mut Vec<(Option<Vec<String>>, &'a Value)>,
) {
    for (keyword, value) in schema {
        if keyword == "properties" {
            if let Value::Object(properties) = value {
                for (name, sub) in properties {
                    let sub_path = path.map(|p| {
                        let mut p = p.clone();
                        p.push(name.clone());
                        p
                    });
                    stack.push((sub_path, sub));
                }
            }
        } else if SUBSCHEMA_SINGLE.contains(&keyword.as_str()) {
            stack.push((None, value));
        } else if SUBSCHEMA_LIST.contains(&keyword.as_str()) {
            if let Value::Array(list) = value {
                stack.extend(list.iter().map(|sub| (None, sub)));
            }
        } else if SUBSCHEMA_MAP.contains(&keyword.as_str()) {
            if let Value::Object(map) = value {
                stack.extend(map.values().map(|sub| (None, sub)));
            }
        }
    }
}

/// Whether `text` is an RFC 9110 token.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks a `tools/call`'s `Mcp-Param-*` headers against its `arguments`: each annotated
/// argument and its header are present together and agree; the first disagreement, described.
pub fn check(
    annotated: &[ParamHeader],
    arguments: &Value,
    headers: &HeaderMap,
) -> Result<(), String> {
    for param in annotated {
        let name = format!("Mcp-Param-{}", param.token);
        let key = format!("{PREFIX}{}", param.token.to_ascii_lowercase());
        let mut values = headers.get_all(key.as_str()).iter();
        let raw = values.next();
        if raw.is_some() && values.next().is_some() {
            return Err(format!("{name} header appears more than once"));
        }
        let raw = raw.map(|v| v.to_str().unwrap_or("\u{fffd}"));
        let argument = param.path.join(".");
        let value = value_at(arguments, &param.path).filter(|v| !v.is_null());
        let Some(value) = value else {
            if raw.is_some() {
                return Err(format!(
                    "{name} header is present but the request body's '{argument}' argument is absent"
                ));
            }
            continue;
        };
        let Some(rendered) = render(value) else {
            if raw.is_some() {
                return Err(format!(
                    "{name} header does not match the request body's '{argument}' argument"
                ));
            }
            continue;
        };
        let Some(raw) = raw else {
            return Err(format!(
                "{name} header is missing but the request body's '{argument}' argument is present"
            ));
        };
        let Some(decoded) = decode_value(raw) else {
            return Err(format!(
                "{name} header carries a malformed base64 sentinel value"
            ));
        };
        if !matches(&param.kind, value, &rendered, &decoded) {
            return Err(format!(
                "{name} header does not match the request body's '{argument}' argument"
            ));
        }
    }
    Ok(())
}

fn value_at<'a>(arguments: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(arguments, |node, key| node.as_object()?.get(key))
}

/// A scalar as a client mirrors it into a header; `None` for what has no header form.
fn render(value: &Value) -> Option<String> {
    match value {
        Value::Bool(b) => Some(b.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64()?;
            // As Python (the reference SDK) prints a float: `42.0`, `0.5`.
            Some(if f.fract() == 0.0 && f.abs() < 1e16 {
                format!("{f:.1}")
            } else {
                f.to_string()
            })
        }
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Whether a decoded header agrees with its argument: integers compare as numbers (`42` and
/// `42.0`), anything else as the client's rendering.
fn matches(kind: &str, value: &Value, rendered: &str, decoded: &str) -> bool {
    let integral = match value {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    };
    if kind == "integer" && integral && is_canonical_decimal(decoded) {
        let (whole, fraction) = decoded.split_once('.').unwrap_or((decoded, ""));
        if fraction.bytes().any(|b| b != b'0') {
            return false;
        }
        let body = match value {
            Value::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from))
                .or_else(|| n.as_f64().map(|f| f as i128)),
            _ => None,
        };
        return whole
            .parse::<i128>()
            .ok()
            .zip(body)
            .is_some_and(|(h, b)| h == b);
    }
    decoded == rendered
}

/// `-?digits(.digits)?`, without leading zeros.
fn is_canonical_decimal(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && (whole == "0" || !whole.starts_with('0')) && fraction.is_none_or(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "count": {"type": "integer", "x-mcp-header": "Count"},
            "nested": {"type": "object", "properties": {
                "flag": {"type": "boolean", "x-mcp-header": "Flag"}}},
            "plain": {"type": "string"}
        }})
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn annotated_properties_are_found_on_the_properties_chain_only() {
        let found = annotations(&schema()).unwrap();
        let mut tokens: Vec<_> = found.iter().map(|f| f.token.as_str()).collect();
        tokens.sort_unstable();
        assert_eq!(tokens, ["Count", "Flag", "Region"]);
        let off_chain =
            json!({"anyOf": [{"properties": {"a": {"type": "string", "x-mcp-header": "A"}}}]});
        assert_eq!(annotations(&off_chain), None);
        let on_number = json!({"properties": {"a": {"type": "number", "x-mcp-header": "A"}}});
        assert_eq!(annotations(&on_number), None);
        let twice = json!({"properties": {
            "a": {"type": "string", "x-mcp-header": "A"},
            "b": {"type": "string", "x-mcp-header": "a"}}});
        assert_eq!(annotations(&twice), None);
        assert_eq!(
            annotations(&json!({"default": {"x-mcp-header": 1}})),
            Some(vec![])
        );
    }

    #[test]
    fn headers_and_arguments_must_agree() {
        let found = annotations(&schema()).unwrap();
        let args = json!({"region": "Hello", "count": 42, "nested": {"flag": true}});
        let all = [
            ("mcp-param-region", "Hello"),
            ("mcp-param-count", "42.0"),
            ("mcp-param-flag", "true"),
        ];
        assert_eq!(check(&found, &args, &headers(&all)), Ok(()));
        let encoded = [
            ("mcp-param-region", "=?base64?SGVsbG8=?="),
            ("mcp-param-count", "42"),
            ("mcp-param-flag", "true"),
        ];
        assert_eq!(check(&found, &args, &headers(&encoded)), Ok(()));
        for bad in [
            vec![
                ("mcp-param-region", "=?base64?SGVsbG8?="),
                ("mcp-param-count", "42"),
                ("mcp-param-flag", "true"),
            ],
            vec![
                ("mcp-param-region", "=?base64?SGVs!!!bG8=?="),
                ("mcp-param-count", "42"),
                ("mcp-param-flag", "true"),
            ],
            vec![("mcp-param-count", "42"), ("mcp-param-flag", "true")],
            vec![
                ("mcp-param-region", "Bye"),
                ("mcp-param-count", "42"),
                ("mcp-param-flag", "true"),
            ],
            vec![
                ("mcp-param-region", "Hello"),
                ("mcp-param-region", "Hello"),
                ("mcp-param-count", "42"),
                ("mcp-param-flag", "true"),
            ],
        ] {
            assert!(check(&found, &args, &headers(&bad)).is_err(), "{bad:?}");
        }
        let absent = json!({"count": 1});
        let stray = [("mcp-param-region", "x"), ("mcp-param-count", "1")];
        assert!(check(&found, &absent, &headers(&stray)).is_err());
        assert_eq!(
            check(&found, &absent, &headers(&[("mcp-param-count", "1")])),
            Ok(())
        );
    }
}
