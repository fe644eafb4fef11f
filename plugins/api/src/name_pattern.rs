//! Name patterns of the configuration (tool, prompt and model names): one reading everywhere.

use std::fmt;

/// A name pattern: an exact name, `*` (any name) or `prefix*` (names starting with `prefix`).
/// A `*` anywhere but at the end is refused, so `a*b` never silently means the literal name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePattern {
    /// Any name.
    Any,
    /// Names starting with this prefix.
    Prefix(String),
    /// Exactly this name.
    Exact(String),
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pattern `{0}`: `*` is only allowed at the end")]
pub struct NamePatternError(String);

impl NamePattern {
    /// Reads `text`: `*`, `prefix*` or an exact name.
    pub fn parse(text: &str) -> Result<Self, NamePatternError> {
        match text.find('*') {
            None => Ok(Self::Exact(text.to_string())),
            Some(_) if text == "*" => Ok(Self::Any),
            Some(at) if at == text.len() - 1 => Ok(Self::Prefix(text[..at].to_string())),
            Some(_) => Err(NamePatternError(text.to_string())),
        }
    }

    /// Whether `name` matches.
    #[inline]
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Prefix(prefix) => name.starts_with(prefix.as_str()),
            Self::Exact(exact) => exact == name,
        }
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Prefix(prefix) => write!(f, "{prefix}*"),
            Self::Exact(exact) => f.write_str(exact),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_any_and_prefix() {
        let exact = NamePattern::parse("add").unwrap();
        assert!(exact.matches("add") && !exact.matches("adder"));
        let any = NamePattern::parse("*").unwrap();
        assert!(any.matches("") && any.matches("x"));
        let prefix = NamePattern::parse("claude-*").unwrap();
        assert!(prefix.matches("claude-sonnet") && !prefix.matches("gpt"));
        for text in ["add", "*", "claude-*"] {
            assert_eq!(NamePattern::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn a_star_inside_a_name_is_refused() {
        for text in ["a*b", "*a", "a**"] {
            assert_eq!(
                NamePattern::parse(text).unwrap_err().to_string(),
                format!("pattern `{text}`: `*` is only allowed at the end")
            );
        }
    }
}
