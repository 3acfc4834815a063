//! Running the `mediaflow` binary from the CLI's integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test, with the user's environment kept out of the way.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mediaflow"));
    c.env_remove("MEDIAFLOW_DATABASE_URL")
        .env_remove("MEDIAFLOW_PLUGINS_DIR")
        .env("NO_COLOR", "1");
    c
}

/// Exit code, stdout and stderr of a finished command.
#[allow(dead_code)] // not every test binary runs one to its end
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("mediaflow runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The shipped example workflows (`workflows/`).
#[allow(dead_code)] // not every test binary runs them
pub fn workflows() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows")
}

/// An executable the workspace builds beside `mediaflow` (`mediaflow-llm`,
/// `testplugin-proc`…); fails the test, saying how to build it, when it is missing.
#[allow(dead_code)] // not every test binary needs one
pub fn built_beside(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_mediaflow"))
        .parent()
        .expect("target dir")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the workspace first (`cargo test --workspace --no-run`, as scripts/test.sh does)",
        path.display()
    );
    path
}
