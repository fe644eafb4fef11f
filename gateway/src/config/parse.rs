//! Reading the file into the schema: TOML syntax and type errors, located and named by key path.

use std::fmt::Write as _;
use std::path::Path;

use serde_path_to_error::Segment;

use super::error::{ConfigError, ConfigErrors};
use super::schema::ConfigFile;

/// Parses `source` into the schema; an error names the key path of the value it is about (e.g.
/// `route[2].upstream.timeout: ...`) besides its place.
pub(super) fn parse(path: &Path, source: &str) -> Result<ConfigFile, ConfigErrors> {
    let located = |error: &toml::de::Error, keys: &[Key<'_>]| {
        let message = error.message().trim();
        let message = match key_path(keys, message) {
            Some(key_path) => format!("{key_path}: {message}"),
            None => message.to_string(),
        };
        ConfigErrors(vec![ConfigError::new(path, source, error.span(), message)])
    };
    let document = toml::Deserializer::parse(source).map_err(|e| located(&e, &[]))?;
    serde_path_to_error::deserialize(document).map_err(|e| located(e.inner(), &keys(e.path())))
}

/// One step of a key path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key<'a> {
    /// A key of a table.
    Name(&'a str),
    /// An element of an array, e.g. the third `[[route]]`.
    Index(usize),
}

/// The steps of `path` as written in the file, without the ones `toml::Spanned` adds.
fn keys(path: &serde_path_to_error::Path) -> Vec<Key<'_>> {
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(Key::Index(*index)),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                (!key.starts_with("$__serde_spanned_private")).then_some(Key::Name(key))
            }
            Segment::Unknown => None,
        })
        .collect()
}

/// `route[2].upstream.timeout`, or `None` when the error is about the file's top level.
fn key_path(keys: &[Key<'_>], message: &str) -> Option<String> {
    // An unknown key is named by the message already: the path names the table it is in.
    let keys = match keys.split_last() {
        Some((Key::Name(last), table))
            if message.starts_with(&format!("unknown field `{last}`")) =>
        {
            table
        }
        _ => keys,
    };
    if keys.is_empty() {
        return None;
    }
    let mut out = String::new();
    for key in keys {
        match key {
            Key::Index(index) => {
                let _ = write!(out, "[{index}]");
            }
            Key::Name(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(source: &str) -> String {
        match parse(Path::new("t.toml"), source) {
            Ok(_) => panic!("parsed:\n{source}"),
            Err(errors) => errors.to_string(),
        }
    }

    #[test]
    fn a_type_error_deep_in_the_file_names_its_key_path() {
        let route = |name: &str, extra: &str| {
            format!(
                "[[route]]\nname = \"{name}\"\nmatch = {{ path_prefix = \"/{name}\" }}\n\
                 upstream = {{ url = \"http://127.0.0.1:9\"{extra} }}\n"
            )
        };
        let source = [
            route("a", ""),
            route("b", ""),
            route("c", ", timeout = \"10 parsecs\""),
        ]
        .concat();
        assert_eq!(
            parse_error(&source),
            "error: t.toml:12:52: route[2].upstream.timeout: `10 parsecs` has no known unit \
             (use ms, s, m, h or d)"
        );
    }

    #[test]
    fn an_unknown_key_is_named_once_with_the_table_it_is_in() {
        let error = parse_error("[server]\nlisten = \"127.0.0.1:1\"\nlisten_port = 3\n");
        assert!(
            error.starts_with("error: t.toml:3:1: server: unknown field `listen_port`, expected"),
            "{error}"
        );
        let error = parse_error("[srever]\n");
        assert!(
            error.starts_with("error: t.toml:1:2: unknown field `srever`, expected"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_key_names_the_table_it_is_missing_from() {
        assert_eq!(
            parse_error("[[route]]\nmatch = { path_prefix = \"/a\" }\n"),
            "error: t.toml:1:1: route[0]: missing field `name`"
        );
    }

    #[test]
    fn a_syntax_error_has_no_key_path() {
        assert_eq!(
            parse_error("[server\n"),
            "error: t.toml:1:8: unclosed table, expected `]`"
        );
    }
}
