//! Relay tokens: a device proves which plans it may sync by presenting one when it connects.
//!
//! A token is 32 random bytes written as 64 hex digits. It is shown once, to the counselor who
//! issues it, and travels to the device in person with the device code. Plans store only its
//! SHA-256 (`devices.<id>.token_hash`), so neither a relay nor a stolen plan document reveals
//! it. See `SECURITY.md` and `docs/sync.md`, Authentication.

use sha2::{Digest, Sha256};

use crate::sync_error::SyncError;

/// Hex digits of a token.
pub const TOKEN_LEN: usize = 64;

/// A fresh random token (two v4 UUIDs from the operating system's generator: 244 random bits).
pub fn generate_token() -> String {
    let high = uuid::Uuid::new_v4();
    let low = uuid::Uuid::new_v4();
    format!(
        "{}{}",
        hex::encode(high.as_bytes()),
        hex::encode(low.as_bytes())
    )
}

/// Checks the shape of a presented token without echoing it.
pub fn check_token(token: &str) -> Result<(), SyncError> {
    if token.len() == TOKEN_LEN && token.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(SyncError::Unauthorized("malformed token"))
    }
}

/// The hex SHA-256 of a token, as stored in plans and in the relay's index.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.to_ascii_lowercase().as_bytes()))
}

/// The `token` query parameter of a request target (`/path?token=…`), if any.
pub fn token_from_query(target: &str) -> Option<&str> {
    let query = target.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

/// `url` with `?token=` (or `&token=`) appended; a URL without a path gets `/` first.
pub fn url_with_token(url: &str, token: &str) -> String {
    let authority_and_rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let slash = if authority_and_rest.contains('/') {
        ""
    } else {
        "/"
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{slash}{separator}token={token}")
}

/// `text` with every occurrence of `token` blanked, for error messages that might quote a URL.
pub fn redact(text: &str, token: Option<&str>) -> String {
    let mut out = match token {
        Some(token) if !token.is_empty() => text.replace(token, "<token>"),
        _ => text.to_string(),
    };
    if let Some(at) = out.find("token=") {
        let end = out[at..]
            .find(|c: char| c == '&' || c.is_whitespace() || c == '"')
            .map_or(out.len(), |i| at + i);
        out.replace_range(at..end, "token=<token>");
    }
    out
}

/// What a relay token vouches for when its device pushes changes (`docs/sync.md`,
/// Authentication): a plan may newly list the pushing token's own hash, hashes this store has
/// never seen in another plan, or a client device's hash from another plan where the pusher is
/// a counselor device — so no device plants plans on someone else's token, and nobody on a
/// counselor's. With `must_be_listed` (a new plan pushed under
/// open enrollment) the plan must list the pushing token, not revoked, before it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenVoucher {
    /// SHA-256 (hex) of the pushing device's token.
    pub token_hash: String,
    /// The plan must list `token_hash` once it is stored.
    pub must_be_listed: bool,
}

/// The refusal when a plan would newly list a token its pusher cannot vouch for.
pub const CANNOT_VOUCH: &str = "a plan lists a relay token that its pusher cannot vouch for";
/// The refusal when a new plan pushed under open enrollment does not list its pusher's token.
pub const NOT_LISTED: &str = "a new plan must list the token that pushes it";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_hash_stably() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        check_token(&a).unwrap();
        assert!(check_token("short").is_err());
        assert_eq!(token_hash(&a), token_hash(&a.to_uppercase()));
        assert_eq!(token_hash(&a).len(), 64);
    }

    #[test]
    fn query_parsing_and_redaction() {
        assert_eq!(token_from_query("/?token=abc&x=1"), Some("abc"));
        assert_eq!(token_from_query("/?x=1&token=abc"), Some("abc"));
        assert_eq!(token_from_query("/"), None);
        let url = url_with_token("ws://127.0.0.1:1", "abc");
        assert_eq!(url, "ws://127.0.0.1:1/?token=abc");
        assert_eq!(
            url_with_token("wss://h/r?x=1", "t"),
            "wss://h/r?x=1&token=t"
        );
        let message = format!("Unable to connect to {url}: refused");
        let clean = redact(&message, Some("abc"));
        assert!(!clean.contains("abc"), "{clean}");
        assert!(!redact(&message, None).contains("abc"));
    }
}
