//! Database URLs: redacting passwords for messages, and finding an SQLite URL's file.

use std::path::PathBuf;

/// Query parameters whose value is a secret (compared without case).
const SECRET_PARAMS: [&str; 4] = ["password", "passwd", "pwd", "sslpassword"];

/// The URL with any password replaced by `***`, for error messages and logs: the one in
/// the user info (which may itself hold unencoded `/`, `?`, `:` or `@`) and any
/// `password=` query parameter. When the URL is ambiguous it hides more, never less.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return redact_query(url);
    };
    let Some(at) = host_start(rest) else {
        return format!("{scheme}://{}", redact_query(rest));
    };
    let userinfo = &rest[..at];
    let host_and_rest = &rest[at + 1..];
    let user = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => userinfo.to_owned(),
    };
    format!("{scheme}://{user}@{}", redact_query(host_and_rest))
}

/// Where the user info ends: the last `@` that is followed by something shaped like a
/// host (and port) and then the end, a `/` or a `?`. The host never holds an `@`; the
/// password may.
fn host_start(rest: &str) -> Option<usize> {
    let host_like = |s: &str| {
        let host = s.split(['/', '?']).next().unwrap_or_default();
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_:[]%,".contains(c))
    };
    rest.char_indices()
        .rev()
        .filter(|&(_, c)| c == '@')
        .map(|(i, _)| i)
        .find(|&i| host_like(&rest[i + 1..]))
}

fn redact_query(s: &str) -> String {
    let Some((head, query)) = s.split_once('?') else {
        return s.to_owned();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if SECRET_PARAMS.iter().any(|p| key.eq_ignore_ascii_case(p)) => {
                format!("{key}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}?{}", params.join("&"))
}

/// The file an `sqlite:` URL names, or `None` for an in-memory database.
pub(crate) fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        let cases = [
            (
                "postgres://bob:s3cret@db.example:5432/mf",
                "postgres://bob:***@db.example:5432/mf",
            ),
            // An unencoded `/` in the password.
            (
                "postgres://bob:se/cr/et@db.example/mf",
                "postgres://bob:***@db.example/mf",
            ),
            // `?`, `@` and `:` in the password.
            (
                "postgres://bob:a?b@c:d@db:5432/mf?sslmode=disable",
                "postgres://bob:***@db:5432/mf?sslmode=disable",
            ),
            // The password as a query parameter.
            (
                "postgres://db/mf?user=bob&password=s3cret&sslmode=require",
                "postgres://db/mf?user=bob&password=***&sslmode=require",
            ),
            (
                "postgresql://bob@db/mf?PASSWORD=x",
                "postgresql://bob@db/mf?PASSWORD=***",
            ),
            ("postgres://bob@db/mf", "postgres://bob@db/mf"),
            ("sqlite:///tmp/x.db", "sqlite:///tmp/x.db"),
        ];
        for (url, redacted) in cases {
            assert_eq!(redact_url(url), redacted, "{url}");
            assert!(!redact_url(url).contains("s3cret") && !redact_url(url).contains("cr/et"));
        }
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_path("sqlite:///var/x.db?mode=rwc"),
            Some(PathBuf::from("/var/x.db"))
        );
        assert_eq!(sqlite_path("sqlite:rel.db"), Some(PathBuf::from("rel.db")));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://db/x"), None);
    }
}
