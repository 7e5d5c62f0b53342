//! `pxedeck import` as an operator runs it: a CSV of a rack becomes machine
//! files through the inventory writer, committed in git; bad rows print as
//! file:line and nothing is written; `--dry-run` writes nothing; the
//! imported tree passes `check`.

use std::path::Path;
use std::process::{Command, Output};

#[path = "support/git.rs"]
mod git_cli;
use git_cli::git;

fn pxedeck(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pxedeck"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run pxedeck")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A git work tree holding a copy of the example inventory.
fn world() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let nodes = dir.path().join("nodes");
    pxedeck::demo::copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("nodes"),
        &nodes,
        &str::to_string,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("pxedeck.yaml"),
        "server:\n  address: 10.99.0.1\ndhcp:\n  pools:\n    - subnet: 10.99.0.0/24\n      \
         range: 10.99.0.100-10.99.0.199\ninventory: nodes\n",
    )
    .unwrap();
    git(dir.path(), &["init", "-q"]);
    git(
        dir.path(),
        &["-c", "user.name=t", "-c", "user.email=t@x", "add", "."],
    );
    git(
        dir.path(),
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@x",
            "commit",
            "-qm",
            "start",
        ],
    );
    dir
}

const RACK: &str = "hostname,serial,asset,mac,group,profile,ip,install\n\
                    r12-01,SN-R12-01,A-R12-01,,rack12,ubuntu-2404,,\n\
                    r12-02,SN-R12-02,,,rack12,ubuntu-2404,,false\n\
                    r12-03,,A-R12-03,52:54:00:12:00:03,rack12,talos-worker,10.99.0.123,\n";

#[test]
fn a_rack_is_imported_committed_and_checks_clean() {
    let w = world();
    let d = w.path();
    std::fs::write(d.join("rack.csv"), RACK).unwrap();
    // A dry run shows the files and writes none.
    let o = pxedeck(&["import", "rack.csv", "--dry-run", "--install"], d);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("── rack12/r12-01.yaml ──"), "{out}");
    assert!(out.contains("serial: \"SN-R12-01\"\n"), "{out}");
    assert!(out.contains("3 machines would be written"), "{out}");
    assert!(!d.join("nodes/rack12").exists(), "a dry run wrote files");

    let o = pxedeck(&["import", "rack.csv", "--install"], d);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("3 machines imported, committed as "), "{out}");
    let one = std::fs::read_to_string(d.join("nodes/rack12/r12-01.yaml")).unwrap();
    assert!(
        one.contains("serial: \"SN-R12-01\"\nasset: \"A-R12-01\"\n"),
        "{one}"
    );
    assert!(
        one.contains("install: true\n"),
        "--install: an empty cell is true"
    );
    assert!(!one.contains("mac:"), "{one}");
    let two = std::fs::read_to_string(d.join("nodes/rack12/r12-02.yaml")).unwrap();
    assert!(
        two.contains("install: false\n"),
        "a `false` cell stays false"
    );
    let log = git(d, &["log", "--format=%s", "-n", "1"]);
    assert_eq!(log.trim(), "import 3 machines from rack.csv");
    assert!(git(d, &["status", "--porcelain", "--", "nodes"]).is_empty());
    let o = pxedeck(&["check"], d);
    assert!(o.status.success(), "{}", text(&o));
    // The same file again: every row collides; nothing more is written.
    let o = pxedeck(&["import", "rack.csv"], d);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("rack.csv:2: hostname r12-01 is already r12-01's (rack12/r12-01.yaml)"),
        "{out}"
    );
    assert!(out.contains("3 bad rows; nothing written"), "{out}");
}

#[test]
fn bad_rows_are_listed_and_nothing_is_written() {
    let w = world();
    let d = w.path();
    std::fs::write(
        d.join("bad.csv"),
        "hostname,serial,profile\n\
         ok-01,SN-OK-01,ubuntu-2404\n\
         dup-01,SN-OK-01,ubuntu-2404\n\
         ph-01,Default string,ubuntu-2404\n\
         seed-01,CZ2041PO06,ubuntu-2404\n",
    )
    .unwrap();
    let o = pxedeck(&["import", "bad.csv"], d);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("bad.csv:3: serial SN-OK-01 is also on line 2"),
        "{out}"
    );
    assert!(
        out.contains("bad.csv:4: serial \"Default string\" is a firmware placeholder"),
        "{out}"
    );
    assert!(
        out.contains("bad.csv:5: serial CZ2041PO06 is already prod-06's (k8s-prod/prod-06.yaml)"),
        "{out}"
    );
    assert!(
        !d.join("nodes/ok-01.yaml").exists(),
        "a good row of a bad file was written"
    );
    // An unknown profile is the writer's refusal, for the whole file.
    std::fs::write(
        d.join("p.csv"),
        "hostname,serial,profile\nx-01,SN-X-01,nope\n",
    )
    .unwrap();
    let o = pxedeck(&["import", "p.csv"], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("no profile named `nope`"), "{}", text(&o));
    // Past the size bound: refused, not cut.
    let big = format!("hostname,serial,profile\n{}", "#\n".repeat(600_000));
    std::fs::write(d.join("big.csv"), big).unwrap();
    let o = pxedeck(&["import", "big.csv"], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("at most 1048576 are read"),
        "{}",
        text(&o)
    );
}
