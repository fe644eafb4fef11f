//! Tokens for the JWT tests, minted through `tollgate::token` as `tollgate token` mints them.

use jsonwebtoken::Algorithm;
use tollgate::token::{mint, TokenRequest};
use tollgate_testkit::keys::KeyFiles;

/// Issuer the tests configure.
pub const ISSUER: &str = "https://idp.test";
/// Audience the tests configure.
pub const AUDIENCE: &str = "tollgate";

/// A token for alice (groups `math-users,staff`, 10 minutes, [`ISSUER`], [`AUDIENCE`]) signed
/// with the key `file` of `keys` by `alg`, after `edit` changed the request.
pub fn mint_token(
    keys: &KeyFiles,
    file: &str,
    alg: Algorithm,
    kid: Option<&str>,
    edit: impl FnOnce(&mut TokenRequest),
) -> String {
    let mut request = TokenRequest {
        subject: "alice@example.com".into(),
        issuer: Some(ISSUER.into()),
        audience: Some(AUDIENCE.into()),
        ttl_secs: 600,
        claims: vec![("groups".into(), "math-users,staff".into())],
        kid: kid.map(str::to_string),
    };
    edit(&mut request);
    mint(&request, alg, &keys.read(file)).expect("mint")
}

/// An HS256 token for `subject` in the comma-separated `groups`, valid for 10 minutes.
pub fn hs256_token(secret: &str, subject: &str, groups: &str) -> String {
    let request = TokenRequest {
        subject: subject.into(),
        issuer: None,
        audience: None,
        ttl_secs: 600,
        claims: vec![("groups".into(), groups.into())],
        kid: None,
    };
    mint(&request, Algorithm::HS256, secret.as_bytes()).expect("mint")
}
