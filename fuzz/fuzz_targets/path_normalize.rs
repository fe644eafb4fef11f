//! Path normalisation (`routing::path::normalize`), which decides the route a request reaches and
//! the path its upstream receives: never panics, a normal path is a fixed point, and what it
//! returns has no dot segment, no empty segment and no escape it should have decoded or refused.

#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use tollgate::internals::path::normalize;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(normal) = normalize(path) else {
        return;
    };
    if !path.starts_with('/') {
        // `*` and the like are left alone.
        assert!(matches!(normal, Cow::Borrowed(p) if p == path));
        return;
    }
    let again = normalize(&normal)
        .unwrap_or_else(|e| panic!("{path:?} normalises to {normal:?}, which is refused: {e}"));
    assert!(
        matches!(again, Cow::Borrowed(p) if p == normal),
        "{path:?} -> {normal:?} -> {again:?}"
    );
    check_normal(&normal, path);
});

/// What a normal path looks like.
fn check_normal(normal: &str, from: &str) {
    let fail = |what: &str| -> ! { panic!("{from:?} normalises to {normal:?}, which {what}") };
    if !normal.starts_with('/') {
        fail("does not start with /");
    }
    for bad in ["//", "/./", "/../", "\\", ";"] {
        if normal.contains(bad) {
            fail(&format!("holds {bad:?}"));
        }
    }
    if normal.ends_with("/.") || normal.ends_with("/..") {
        fail("ends with a dot segment");
    }
    // ASCII ones: a path reaches the gateway as ASCII (`http::Uri`), so other characters come
    // only from decoding, which the check of escapes covers.
    if normal.bytes().any(|b| b < 0x20 || b == 0x7f) {
        fail("holds a control character");
    }
    let bytes = normal.as_bytes();
    let hex = |at: usize| bytes.get(at).filter(|b| b.is_ascii_hexdigit()).copied();
    for (i, &byte) in bytes.iter().enumerate() {
        if byte != b'%' {
            continue;
        }
        let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) else {
            fail("holds a malformed escape")
        };
        if high.is_ascii_lowercase() || low.is_ascii_lowercase() {
            fail("holds a lower-case escape");
        }
        let value = u8::from_str_radix(&normal[i + 1..i + 3], 16).unwrap();
        if value.is_ascii_alphanumeric() || b"-._~".contains(&value) {
            fail("holds an escaped unreserved character");
        }
        if matches!(value, b'/' | b'\\' | b';') || value < 0x20 || value == 0x7f {
            fail("holds an escape it should refuse");
        }
        if value == b'%' && hex(i + 3).is_some() && hex(i + 4).is_some() {
            fail("is percent-encoded twice (an upstream decoding twice reads another path)");
        }
    }
}
