//! Where `file.read` and `file.write` may reach.
//!
//! Without a root they reach whatever the `mediaflow` process may (its user's files).
//! `MEDIAFLOW_FILES_ROOT` (set by whoever runs mediaflow) confines every step to one
//! directory; a step's `root:` narrows that further (a relative `root:` is taken inside
//! the operator's root), and never widens it. Paths are resolved (symbolic links
//! included) before they are compared, so `..` and links cannot lead out.

use std::path::{Path, PathBuf};

use mediaflow_plugin_api::PluginError;

/// The environment variable that confines file steps for a whole installation.
pub const FILES_ROOT_ENV: &str = "MEDIAFLOW_FILES_ROOT";

/// The directory `step_root` and the operator's root allow, if any (resolved).
fn root(step_root: Option<&str>) -> Result<Option<PathBuf>, PluginError> {
    let operator = std::env::var_os(FILES_ROOT_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let wanted = match (&operator, step_root) {
        (None, None) => return Ok(None),
        (Some(op), None) => op.clone(),
        (None, Some(r)) => PathBuf::from(r),
        (Some(op), Some(r)) => op.join(r),
    };
    let resolved = std::fs::canonicalize(&wanted).map_err(|e| {
        PluginError::new(
            "bad_root",
            format!("the files root {} cannot be used: {e}", wanted.display()),
        )
        .with_help(format!(
            "make the directory, or fix `root:` / {FILES_ROOT_ENV}"
        ))
    })?;
    if let Some(op) = operator {
        let op = std::fs::canonicalize(&op).unwrap_or(op);
        if !resolved.starts_with(&op) {
            return Err(outside(&wanted, &op));
        }
    }
    Ok(Some(resolved))
}

fn outside(path: &Path, root: &Path) -> PluginError {
    PluginError::new(
        "path_outside_root",
        format!(
            "{} is outside the files root {}",
            path.display(),
            root.display()
        ),
    )
    .with_help(format!(
        "file steps may only reach below `root:` and {FILES_ROOT_ENV}; use a path inside it"
    ))
}

/// `path` as the step may use it: unchanged without a root; otherwise resolved (a
/// relative path starts at the root) and refused unless it lies below the root. The file
/// need not exist yet (for `file.write`): its nearest existing ancestor is resolved.
pub fn confine(path: &str, step_root: Option<&str>) -> Result<PathBuf, PluginError> {
    let Some(root) = root(step_root)? else {
        return Ok(PathBuf::from(path));
    };
    let joined = root.join(path);
    let resolved = resolve(&joined).ok_or_else(|| outside(&joined, &root))?;
    if resolved.starts_with(&root) {
        Ok(resolved)
    } else {
        Err(outside(Path::new(path), &root))
    }
}

/// The real path of `path`: its longest existing prefix resolved, the rest appended.
/// `None` if the part that does not exist yet holds `..` or `.` (no file name to keep).
fn resolve(path: &Path) -> Option<PathBuf> {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    let mut real = loop {
        match std::fs::canonicalize(&existing) {
            Ok(real) => break real,
            Err(_) => {
                rest.push(existing.file_name()?.to_owned());
                if !existing.pop() {
                    return None;
                }
            }
        }
    };
    for part in rest.iter().rev() {
        real.push(part);
    }
    Some(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: it sets the process-wide environment variable.
    #[test]
    fn paths_stay_below_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("desk");
        std::fs::create_dir_all(root.join("copy")).unwrap();
        std::fs::write(root.join("copy/story.txt"), "text").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "no").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link.txt")).unwrap();
        let real_root = std::fs::canonicalize(&root).unwrap();
        let r = root.to_str().unwrap();

        // No root: paths are used as given.
        std::env::remove_var(FILES_ROOT_ENV);
        assert_eq!(confine("../x", None).unwrap(), PathBuf::from("../x"));

        // A step's root.
        assert_eq!(
            confine("copy/story.txt", Some(r)).unwrap(),
            real_root.join("copy/story.txt")
        );
        assert_eq!(
            confine("copy/new/out.md", Some(r)).unwrap(),
            real_root.join("copy/new/out.md"),
            "a file still to be written"
        );
        for escape in [
            "../secret.txt",
            "link.txt",
            "copy/../../secret.txt",
            "/etc/passwd",
        ] {
            let e = confine(escape, Some(r)).unwrap_err();
            assert_eq!(e.code, "path_outside_root", "{escape}: {e:?}");
        }
        assert_eq!(
            confine("new/../../x", Some(r)).unwrap_err().code,
            "path_outside_root"
        );

        // The operator's root: a step's root may narrow it, never widen it.
        std::env::set_var(FILES_ROOT_ENV, &root);
        assert_eq!(
            confine("story.txt", Some("copy")).unwrap(),
            real_root.join("copy/story.txt")
        );
        assert_eq!(
            confine("x", Some(dir.path().to_str().unwrap()))
                .unwrap_err()
                .code,
            "path_outside_root"
        );
        assert_eq!(
            confine("../secret.txt", None).unwrap_err().code,
            "path_outside_root"
        );
        std::env::remove_var(FILES_ROOT_ENV);
    }
}
