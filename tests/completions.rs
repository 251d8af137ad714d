//! `r2migrate completions SHELL` and `r2migrate man`, generated from the CLI definition:
//! every command and flag is in them, the bash script is valid bash, the page is roff.

mod common;

use common::*;

#[test]
fn completion_scripts_know_every_command_and_the_new_flags() {
    let work = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = r2migrate(work.path())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_exit(&out, 0);
        let script = String::from_utf8(out.stdout).unwrap();
        // fish spells a long option `-l io-timeout`.
        for word in [
            "rewrite-urls",
            "rollback",
            "io-timeout",
            "storage-class",
            "header-upload",
        ] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
    }
    let bash = r2migrate(work.path())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let file = work.path().join("r2migrate.bash");
    std::fs::write(&file, bash.stdout).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let bad = r2migrate(work.path())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_exit(&bad, 2);
}

#[test]
fn the_manual_page_is_roff_naming_every_command() {
    let work = tempfile::tempdir().unwrap();
    let out = r2migrate(work.path()).arg("man").output().unwrap();
    assert_exit(&out, 0);
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH r2migrate 1"), "{page}");
    for command in [
        "plan",
        "run",
        "verify",
        "rollback",
        "report",
        "rewrite\\-urls",
    ] {
        assert!(page.contains(command), "no {command} in the page");
    }
}
