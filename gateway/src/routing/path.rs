//! Request paths as routes match them and upstreams receive them: RFC 3986 normalised (unreserved
//! `%XX` decoded, other escapes in upper case, dot segments resolved, `//` merged), so that no
//! spelling of a path reaches a route other than the one its plain form matches, and the upstream
//! is sent the very path that was matched. What cannot be normalised safely is refused: an
//! upstream could read it as a different path than the gateway did.

use std::borrow::Cow;

/// Why a path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `%` not followed by two hex digits.
    #[error("the path has a malformed percent-encoding")]
    BadEscape,
    /// `%2F` or `%5C`, or a raw `\`: servers disagree on whether they separate segments.
    #[error("the path has an encoded `/` or a `\\`")]
    Separator,
    /// A control character, encoded or raw (`%00`, `%0A`, ...).
    #[error("the path has a control character")]
    Control,
    /// `;` (raw or `%3B`): some servers drop what follows it in a segment (path parameters).
    #[error("the path has a `;` (path parameters are not accepted)")]
    Parameters,
    /// `%25` followed by two hex digits: a server that decodes twice reads another path.
    #[error("the path is percent-encoded twice")]
    DoubleEncoded,
}

/// The normalised form of `path`; borrowed when it is already normal (the usual case, no
/// allocation). A path that does not start with `/` (`*`) is left alone.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Ok(Cow::Borrowed(path));
    }
    if is_plain(path.as_bytes()) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode(path.as_bytes())?;
    let resolved = resolve(&decoded);
    // Every byte kept is ASCII or came from the valid UTF-8 input unchanged.
    let text = String::from_utf8(resolved).map_err(|_| PathError::BadEscape)?;
    Ok(if text == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(text)
    })
}

/// Whether `path` needs no work: no escape, no `\` or `;`, no control character, no empty or
/// dot segment.
fn is_plain(path: &[u8]) -> bool {
    let mut previous_slash = false;
    for (i, &byte) in path.iter().enumerate() {
        match byte {
            b'%' | b'\\' | b';' => return false,
            b if b < 0x20 || b == 0x7f => return false,
            b'/' if previous_slash => return false,
            b'.' if previous_slash && is_dot_segment(&path[i..]) => return false,
            _ => {}
        }
        previous_slash = byte == b'/';
    }
    true
}

/// Whether the segment starting at `rest` is `.` or `..`.
fn is_dot_segment(rest: &[u8]) -> bool {
    let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    matches!(&rest[..end], b"." | b"..")
}

fn hex(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Decodes the unreserved escapes, upper-cases the others, refuses the unsafe ones.
fn decode(path: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let byte = path[i];
        match byte {
            b'%' => {
                let (Some(high), Some(low)) = (
                    path.get(i + 1).copied().and_then(hex),
                    path.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::BadEscape);
                };
                let value = high * 16 + low;
                match value {
                    b'/' | b'\\' => return Err(PathError::Separator),
                    b';' => return Err(PathError::Parameters),
                    v if v < 0x20 || v == 0x7f => return Err(PathError::Control),
                    v if is_unreserved(v) => out.push(v),
                    v => {
                        out.push(b'%');
                        out.extend_from_slice(format!("{v:02X}").as_bytes());
                    }
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Separator),
            b';' => return Err(PathError::Parameters),
            b if b < 0x20 || b == 0x7f => return Err(PathError::Control),
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    // Checked on the decoded form: the digits after a `%25` may be escapes themselves
    // (`%25%41%42` decodes to `%25AB`, which a server decoding twice reads as `%AB`).
    let double = out
        .windows(5)
        .any(|w| w.starts_with(b"%25") && w[3].is_ascii_hexdigit() && w[4].is_ascii_hexdigit());
    if double {
        return Err(PathError::DoubleEncoded);
    }
    Ok(out)
}

/// Resolves `.` and `..` (never above the root) and merges empty segments; a trailing `/` (or a
/// last segment that was a dot segment) is kept as a trailing `/`.
fn resolve(path: &[u8]) -> Vec<u8> {
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut trailing_slash = false;
    for segment in path[1..].split(|&b| b == b'/') {
        trailing_slash = false;
        match segment {
            b"" => trailing_slash = true,
            b"." => trailing_slash = true,
            b".." => {
                segments.pop();
                trailing_slash = true;
            }
            other => segments.push(other),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for segment in &segments {
        out.push(b'/');
        out.extend_from_slice(segment);
    }
    if trailing_slash || segments.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn normal(path: &str) -> String {
        normalize(path).unwrap().into_owned()
    }

    #[test]
    fn plain_paths_are_borrowed_as_they_are() {
        for path in [
            "/",
            "/mcp",
            "/sdk/mcp/",
            "/v1/messages",
            "/a.b/c..d/.e",
            "*",
        ] {
            assert!(
                matches!(normalize(path), Ok(Cow::Borrowed(p)) if p == path),
                "{path}"
            );
        }
    }

    #[test]
    fn spellings_of_a_path_become_the_path() {
        for (given, want) in [
            ("/sdk/%6Dcp", "/sdk/mcp"),
            ("/sdk/%6dcp", "/sdk/mcp"),
            ("/public/../private/x", "/private/x"),
            ("/public/%2E%2E/private/x", "/private/x"),
            ("/public/.%2e/private", "/private"),
            ("/a/./b/", "/a/b/"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/../../x", "/x"),
            ("//sdk//mcp", "/sdk/mcp"),
            ("/sdk/mcp//", "/sdk/mcp/"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/a%20b", "/a%20b"),
            ("/%7Euser", "/~user"),
            ("/..", "/"),
        ] {
            assert_eq!(normal(given), want, "{given}");
        }
    }

    #[test]
    fn what_servers_read_differently_is_refused() {
        for (given, error) in [
            ("/sdk%2Fmcp", PathError::Separator),
            ("/sdk%2fmcp", PathError::Separator),
            ("/sdk%5Cmcp", PathError::Separator),
            ("/sdk\\mcp", PathError::Separator),
            ("/sdk;x/mcp", PathError::Parameters),
            ("/sdk%3Bx", PathError::Parameters),
            ("/a%00b", PathError::Control),
            ("/a%0Ab", PathError::Control),
            ("/a%zz", PathError::BadEscape),
            ("/a%4", PathError::BadEscape),
            ("/sdk/%256Dcp", PathError::DoubleEncoded),
        ] {
            assert_eq!(normalize(given), Err(error), "{given}");
        }
        assert_eq!(normal("/100%25"), "/100%25", "a lone %25 is a percent sign");
    }

    #[test]
    fn a_double_encoding_spelled_with_escaped_digits_is_refused() {
        // Found by the `path_normalize` fuzz target: `/%25c%41` became `/%25cA`, which a server
        // decoding twice reads as byte 0xCA, and `/%25%32e%25%32e` became `/%252e%252e`: `/..`.
        for given in [
            "/%25c%41",
            "/%25%41%42",
            "/%25%34%31",
            "/public/%25%32e%25%32e/private",
            "/%25a%62",
        ] {
            assert_eq!(normalize(given), Err(PathError::DoubleEncoded), "{given}");
        }
        assert_eq!(normal("/%25%47%48"), "/%25GH", "G and H are no hex digits");
    }

    proptest! {
        #[test]
        fn normalising_is_idempotent_and_leaves_no_dot_or_empty_segment(
            // Segments of several pieces: escapes next to each other (`%25%41%42`) as well.
            path in "(/(\\.|\\.\\.|%2[eE]|%6[dD]|[a-z]{1,3}|%25|%3[aA]|%4[1-7]|%3[0-9]){0,3})*/?"
        ) {
            prop_assume!(path.starts_with('/'));
            if let Ok(once) = normalize(&path) {
                let twice = normalize(&once).expect("a normal path stays normal");
                prop_assert_eq!(twice.as_ref(), once.as_ref());
                prop_assert!(once.starts_with('/'));
                prop_assert!(!once.contains("//"), "{}", once);
                for segment in once.split('/') {
                    prop_assert!(segment != "." && segment != "..", "{}", once);
                }
            }
        }
    }
}
