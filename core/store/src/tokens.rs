//! Bearer tokens of the HTTP service. The store keeps a token's public id, its name and
//! scope, and the sha256 of its secret; never the secret itself.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::sql::Store;
use crate::{now_ms, Result};

/// One token as stored (no secret).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    /// `read`, `run` or `admin`.
    pub scope: String,
    /// Hex sha256 of the secret half of the token.
    #[serde(skip)]
    pub secret_sha256: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

macro_rules! token_columns {
    () => {
        "id, name, scope, secret_sha256, created_at, last_used_at, revoked_at"
    };
}

fn from_row(row: &AnyRow) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        scope: row.try_get(2)?,
        secret_sha256: row.try_get(3)?,
        created_at: row.try_get(4)?,
        last_used_at: row.try_get(5)?,
        revoked_at: row.try_get(6)?,
    })
}

impl Store {
    pub async fn insert_token(&self, t: &TokenRecord) -> Result<()> {
        self.retry(|| {
            sqlx::query(
                "INSERT INTO api_tokens (id, name, scope, secret_sha256, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&t.id)
            .bind(&t.name)
            .bind(&t.scope)
            .bind(&t.secret_sha256)
            .bind(t.created_at)
            .execute(&self.pool)
        })
        .await?;
        Ok(())
    }

    /// The token with this public id, revoked or not.
    pub async fn token(&self, id: &str) -> Result<Option<TokenRecord>> {
        let sql = concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens WHERE id = $1"
        );
        let row = self
            .retry(|| sqlx::query(sql).bind(id).fetch_optional(&self.pool))
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every token, oldest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let sql = concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens ORDER BY created_at, id"
        );
        let rows = self
            .retry(|| sqlx::query(sql).fetch_all(&self.pool))
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Revokes the live tokens whose id or name is `which`; how many were revoked.
    pub async fn revoke_token(&self, which: &str) -> Result<u64> {
        let done = self
            .retry(|| {
                sqlx::query(
                    "UPDATE api_tokens SET revoked_at = $2 \
                     WHERE (id = $1 OR name = $1) AND revoked_at IS NULL",
                )
                .bind(which)
                .bind(now_ms())
                .execute(&self.pool)
            })
            .await?;
        Ok(done.rows_affected())
    }

    /// Records that a token was used (at most once a minute per token is written).
    pub async fn touch_token(&self, id: &str) -> Result<()> {
        let now = now_ms();
        self.retry(|| {
            sqlx::query(
                "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 \
                 AND (last_used_at IS NULL OR last_used_at < $3)",
            )
            .bind(id)
            .bind(now)
            .bind(now - 60_000)
            .execute(&self.pool)
        })
        .await?;
        Ok(())
    }
}
