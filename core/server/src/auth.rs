//! Bearer tokens: `mf_<id>_<secret>`. The id is public and finds the stored token; only
//! the sha256 of the secret is stored, and it is compared in constant time.

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::Response;
use mediaflow_store::{now_ms, Store, StoreError, TokenRecord};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::problem::ApiError;
use crate::Service;

/// What a token may do. Each scope includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Read runs, logs, artifacts, workflows and plugins.
    Read,
    /// Also start, cancel and re-run runs.
    Run,
    /// Everything.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Run => "run",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "run" => Some(Scope::Run),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// A token just made: the record to store and the only copy of its text.
pub struct NewToken {
    pub record: TokenRecord,
    pub token: String,
}

fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Makes a token named `name` with `scope` and stores its hash; the text is returned once.
pub async fn create_token(store: &Store, name: &str, scope: Scope) -> Result<NewToken, StoreError> {
    let id = random_hex(8);
    let secret = random_hex(32);
    let record = TokenRecord {
        id: id.clone(),
        name: name.to_owned(),
        scope: scope.as_str().to_owned(),
        secret_sha256: secret_hash(&secret),
        created_at: now_ms(),
        last_used_at: None,
        revoked_at: None,
    };
    store.insert_token(&record).await?;
    Ok(NewToken {
        record,
        token: format!("mf_{id}_{secret}"),
    })
}

/// The live token `text` names, if its secret matches.
pub async fn verify(store: &Store, text: &str) -> Result<Option<(TokenRecord, Scope)>, StoreError> {
    let Some((id, secret)) = text
        .strip_prefix("mf_")
        .and_then(|rest| rest.split_once('_'))
    else {
        return Ok(None);
    };
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let Some(record) = store.token(id).await? else {
        return Ok(None);
    };
    let given = secret_hash(secret);
    let same: bool = given
        .as_bytes()
        .ct_eq(record.secret_sha256.as_bytes())
        .into();
    if !same || record.revoked_at.is_some() {
        return Ok(None);
    }
    let Some(scope) = Scope::parse(&record.scope) else {
        return Ok(None);
    };
    Ok(Some((record, scope)))
}

/// The name of the cookie the web view signs in with.
pub const COOKIE: &str = "mediaflow_token";

/// The token a request carries: `Authorization: Bearer …`, else the sign-in cookie.
fn presented(req: &Request) -> Option<String> {
    let headers = req.headers();
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (kind, token) = v.split_once(' ')?;
        return kind
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    cookie_token(headers)
}

/// The token in the web view's sign-in cookie, if the request has one.
pub fn cookie_token(headers: &axum::http::HeaderMap) -> Option<String> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    cookies.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == COOKIE).then(|| v.to_owned())
    })
}

/// The scope a request needs: reading needs `read`, anything that changes state `run`.
fn needed(method: &Method) -> Scope {
    if method == Method::GET || method == Method::HEAD {
        Scope::Read
    } else {
        Scope::Run
    }
}

/// Middleware: 401 without a valid token, 403 when its scope is too small.
pub async fn require_token(
    State(service): State<Service>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(text) = presented(&req) else {
        return Err(ApiError::unauthorized(
            "this endpoint needs a token: send `Authorization: Bearer TOKEN` (`mediaflow token create`)",
        ));
    };
    let Some((record, scope)) = verify(service.store(), &text).await? else {
        return Err(ApiError::unauthorized(
            "the token is unknown, malformed or revoked",
        ));
    };
    let want = needed(req.method());
    if scope < want {
        return Err(ApiError::forbidden(format!(
            "token `{}` has scope `{}`; this needs `{}`",
            record.name,
            scope.as_str(),
            want.as_str()
        )));
    }
    // Best effort: a failed write of the last use does not refuse the request.
    if record.last_used_at.is_none_or(|t| t < now_ms() - 60_000) {
        let _ = service.store().touch_token(&record.id).await;
    }
    req.extensions_mut().insert(scope);
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_verifies_until_revoked_and_only_with_its_secret() {
        let store = Store::in_memory().await.unwrap();
        let made = create_token(&store, "cms", Scope::Run).await.unwrap();
        assert_eq!(made.record.secret_sha256.len(), 64);
        assert!(!made.token.contains(&made.record.secret_sha256));
        let (rec, scope) = verify(&store, &made.token).await.unwrap().unwrap();
        assert_eq!((rec.name.as_str(), scope), ("cms", Scope::Run));
        // The same id with another secret, a truncated secret, and junk.
        let (head, secret) = made.token.rsplit_once('_').unwrap();
        let mut other = secret.to_owned();
        other.replace_range(0..1, if secret.starts_with('0') { "1" } else { "0" });
        for bad in [
            format!("{head}_{other}"),
            format!("{head}_{}", &secret[1..]),
            "mf_".to_owned(),
            "Bearer".to_owned(),
            format!("mf_zz_{secret}"),
        ] {
            assert!(verify(&store, &bad).await.unwrap().is_none(), "{bad}");
        }
        assert_eq!(store.revoke_token("cms").await.unwrap(), 1);
        assert!(verify(&store, &made.token).await.unwrap().is_none());
    }

    #[test]
    fn scopes_are_ordered() {
        assert!(Scope::Read < Scope::Run && Scope::Run < Scope::Admin);
        assert_eq!(needed(&Method::GET), Scope::Read);
        assert_eq!(needed(&Method::POST), Scope::Run);
    }
}
