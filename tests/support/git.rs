//! The `git` CLI for tests that check pxedeck's commits in a real work tree.

use std::path::Path;
use std::process::Command;

/// `git -C dir args…`, ignoring the user's global config; its trimmed
/// stdout. Fails the test with git's stderr when git fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git is missing: install the Debian package git");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}
