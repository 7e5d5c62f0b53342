//! Who may use the API: `Authorization: Bearer <token>` with the full token
//! for commands and reads, or the read-only token for reads. Tokens are
//! compared as SHA-256 digests in constant time, so neither their bytes nor
//! their length leak through timing.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};

use super::HttpState;
use crate::capability::{Key, read_or_create_secret};
use crate::config::Config;

/// What a route lets its caller do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// See inventory values, configs, leases, the event stream.
    Read,
    /// Change the inventory or the leases.
    Command,
}

type Digest = [u8; 32];

fn digest(token: &[u8]) -> Digest {
    Sha256::digest(token).into()
}

/// Equal without an early exit: the time taken does not depend on where
/// the first difference is.
fn same(a: &Digest, b: &Digest) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The API's tokens, as digests.
#[derive(Debug, Clone)]
pub struct ApiTokens {
    full: Option<Digest>,
    read: Option<Digest>,
}

impl ApiTokens {
    /// The tokens a config names. Without `api_token` nothing but the open
    /// routes answers ([`Secrets::load_or_create`] makes one for a server).
    pub fn from_config(http: &crate::config::HttpConfig) -> ApiTokens {
        ApiTokens {
            full: http.api_token.as_deref().map(|t| digest(t.as_bytes())),
            read: http.api_read_token.as_deref().map(|t| digest(t.as_bytes())),
        }
    }

    /// Whether the request's bearer token grants `needed`.
    pub fn check(&self, headers: &HeaderMap, needed: Access) -> Result<(), Refusal> {
        let Some(full) = &self.full else {
            return Err(Refusal::Disabled);
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .map(|t| digest(t.as_bytes()))
            .ok_or(Refusal::Unauthorized)?;
        // Both comparisons always run: which token matched must not show.
        let is_full = same(&given, full);
        let is_read = self.read.as_ref().is_some_and(|r| same(&given, r));
        match (needed, is_full, is_read) {
            (_, true, _) | (Access::Read, _, true) => Ok(()),
            (Access::Command, false, true) => Err(Refusal::ReadOnly),
            _ => Err(Refusal::Unauthorized),
        }
    }
}

/// Why the API refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `api_token` at all (a hand-built state; servers always have one).
    Disabled,
    /// No token, a malformed header, or a token that is not ours.
    Unauthorized,
    /// The read-only token, on a route that commands.
    ReadOnly,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Disabled => (
                StatusCode::FORBIDDEN,
                "the API is disabled: set http.api_token in the config\n",
            )
                .into_response(),
            Refusal::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a valid bearer token is required\n",
            )
                .into_response(),
            Refusal::ReadOnly => (
                StatusCode::FORBIDDEN,
                "this bearer token may read but not command\n",
            )
                .into_response(),
        }
    }
}

/// The token of an `Authorization` value: the scheme `Bearer` in any case
/// (RFC 9110 §11.1), one or more spaces, then an RFC 6750 `b64token` and
/// nothing after it — a trailing space or a second word is refused.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    let b64token = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
    let body = token.trim_end_matches('=');
    (!body.is_empty() && body.bytes().all(b64token)).then_some(token)
}

/// Middleware for the routes that read.
pub async fn require_read(
    State(s): State<Arc<HttpState>>,
    request: Request,
    next: Next,
) -> Response {
    require(&s, Access::Read, request, next).await
}

/// Middleware for the routes that command.
pub async fn require_command(
    State(s): State<Arc<HttpState>>,
    request: Request,
    next: Next,
) -> Response {
    require(&s, Access::Command, request, next).await
}

async fn require(s: &HttpState, needed: Access, request: Request, next: Next) -> Response {
    match s.secrets.api.check(request.headers(), needed) {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// The secrets the HTTP side checks against: the API's tokens and the key
/// that signs capability URLs.
#[derive(Debug)]
pub struct Secrets {
    pub api: ApiTokens,
    pub capabilities: Key,
}

/// What starting the secrets did that the operator should hear about.
#[derive(Debug, Default)]
pub struct SecretsNotes {
    /// The API token was generated into this file (none was configured).
    pub generated_token: Option<PathBuf>,
    /// The file the API token is read from, when it is not in the config.
    pub token_file: Option<PathBuf>,
}

impl Secrets {
    /// From the config's tokens and a fresh random key: for tests and
    /// servers that need not survive a restart.
    pub fn ephemeral(config: &Config) -> std::io::Result<Secrets> {
        Ok(Secrets {
            api: ApiTokens::from_config(&config.http),
            capabilities: Key::generate()?,
        })
    }

    /// For a server: the capability key from its file (created on first
    /// start), and — when the config sets no `api_token` — a token kept in
    /// `api_token_file` (mode 0600), so the API is never open and
    /// `pxedeck attach` on this host can find it.
    pub fn load_or_create(config: &Config) -> anyhow::Result<(Secrets, SecretsNotes)> {
        use anyhow::Context as _;
        let http = &config.http;
        let capabilities = Key::load_or_create(&http.capability_key_file).with_context(|| {
            format!("the capability key {}", http.capability_key_file.display())
        })?;
        let mut notes = SecretsNotes::default();
        let mut with_token = http.clone();
        if with_token.api_token.is_none() {
            let (token, created) = read_or_create_secret(&http.api_token_file)
                .with_context(|| format!("the API token {}", http.api_token_file.display()))?;
            if bearer(&format!("Bearer {token}")) != Some(token.as_str()) {
                anyhow::bail!(
                    "the API token in {} is not a bearer token (letters, digits, - . _ ~ + /)",
                    http.api_token_file.display()
                );
            }
            with_token.api_token = Some(token);
            notes.token_file = Some(http.api_token_file.clone());
            if created {
                notes.generated_token = Some(http.api_token_file.clone());
            }
        }
        Ok((
            Secrets {
                api: ApiTokens::from_config(&with_token),
                capabilities,
            },
            notes,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_nothing_may_trail() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER abc"), Some("abc"));
        assert_eq!(bearer("Bearer  abc"), Some("abc"));
        assert_eq!(bearer("Bearer a+b/c=="), Some("a+b/c=="));
        for refused in [
            "Bearer abc ",
            "Bearer abc\t",
            "Bearer abc def",
            "Bearer ",
            "Bearer",
            "Bearerabc",
            "Basic abc",
            "Bearer\tabc",
            "Bearer ==",
            "Bearer a=b",
        ] {
            assert_eq!(bearer(refused), None, "{refused:?}");
        }
    }
}
