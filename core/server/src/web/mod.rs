//! The web view: a runs list and a run page, rendered on the server (minijinja), no
//! JavaScript build step. The browser signs in with a token once; it is kept in an
//! HttpOnly, SameSite=Strict cookie that the API accepts too (for the live event stream
//! and artifacts).

use std::sync::OnceLock;

use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::{context, Environment};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{self, Scope, COOKIE};
use crate::Service;

mod dag;
mod page;

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, text) in [
            ("layout.html", include_str!("templates/layout.html")),
            ("login.html", include_str!("templates/login.html")),
            ("runs.html", include_str!("templates/runs.html")),
            ("run.html", include_str!("templates/run.html")),
        ] {
            // The templates are part of the binary; one that does not parse is a bug the
            // web tests catch, and the page then says so instead of the process failing.
            if let Err(e) = env.add_template(name, text) {
                eprintln!("mediaflow serve: template {name}: {e}");
            }
        }
        env
    })
}

/// Renders `name`, or a plain 500 page naming the template error.
fn render(name: &str, ctx: minijinja::Value) -> Response {
    match templates().get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => Html(html).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render {name}: {e}"),
        )
            .into_response(),
    }
}

/// The pages, behind [`require_cookie`], and the sign-in form.
pub fn routes(service: Service) -> Router<Service> {
    let pages = Router::new()
        .route("/", get(runs_page))
        .route("/runs/{id}", get(run_page))
        .layer(axum::middleware::from_fn_with_state(
            service,
            require_cookie,
        ));
    Router::new()
        .merge(pages)
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

/// Pages need a `read` token in the cookie; without one the browser goes to `/login`.
async fn require_cookie(State(service): State<Service>, req: Request, next: Next) -> Response {
    let token = auth::cookie_token(req.headers());
    let ok = match token {
        Some(t) => matches!(
            auth::verify(service.store(), &t).await,
            Ok(Some((_, scope))) if scope >= Scope::Read
        ),
        None => false,
    };
    if ok {
        next.run(req).await
    } else {
        Redirect::to("/login").into_response()
    }
}

async fn login_page() -> Response {
    render("login.html", context! { signed_in => false })
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// Whether the request came over HTTPS (directly or through a proxy that says so).
fn https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

async fn login(
    State(service): State<Service>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let token = form.token.trim();
    match auth::verify(service.store(), token).await {
        Ok(Some(_)) => {
            let secure = if https(&headers) { "; Secure" } else { "" };
            let cookie = format!(
                "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000{secure}"
            );
            let mut resp = Redirect::to("/").into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Ok(None) => {
            let mut r = render(
                "login.html",
                context! { signed_in => false, error => "That token is unknown, malformed or revoked." },
            );
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

async fn logout() -> Response {
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("mediaflow_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    resp
}

#[derive(Deserialize)]
struct RunsQuery {
    workflow: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
}

async fn runs_page(State(service): State<Service>, Query(q): Query<RunsQuery>) -> Response {
    match page::runs(&service, q.workflow, q.status, q.cursor).await {
        Ok(ctx) => render("runs.html", ctx),
        Err(e) => e.into_response(),
    }
}

async fn run_page(State(service): State<Service>, Path(id): Path<String>) -> Response {
    match page::run(&service, &id).await {
        Ok(ctx) => render("run.html", ctx),
        Err(e) => e.into_response(),
    }
}

/// Files a step's outputs point at (`{sha256, media_type, ...}` objects), anywhere in them.
fn artifacts(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(m) => {
            let sha = m.get("sha256").and_then(Value::as_str);
            let media = m.get("media_type").and_then(Value::as_str);
            if let (Some(sha), Some(media)) = (sha, media) {
                let kind = if media.starts_with("audio/") {
                    "audio"
                } else if media.starts_with("image/") {
                    "image"
                } else {
                    "file"
                };
                out.push(serde_json::json!({
                    "sha256": sha, "media_type": media, "kind": kind,
                    "name": m.get("name").cloned().unwrap_or(Value::Null),
                }));
            } else {
                m.values().for_each(|x| artifacts(x, out));
            }
        }
        Value::Array(items) => items.iter().for_each(|x| artifacts(x, out)),
        _ => {}
    }
}
