//! The progress display as a person sees it: the binary runs in a real pseudo-terminal
//! (a tmux pane) and the test reads the screen. While it runs: a bar with percent, rate,
//! ETA and the large object's parts. When it ends — finished or Ctrl-C — no trace of the
//! bar is left on the screen. Under `--quiet`, nothing of it at all.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A tmux server of its own (its socket named for the test), one pane, 160 × 40.
struct Pane {
    socket: String,
}

impl Pane {
    fn start(name: &str, cwd: &Path, command: &str) -> Pane {
        let tmux = tmux();
        let socket = format!("r2migrate-{name}-{}", std::process::id());
        let script = cwd.join("pane.sh");
        std::fs::write(&script, format!("{command}\necho EXIT=$?\nsleep 120\n")).unwrap();
        let ok = Command::new(&tmux)
            .args(["-L", &socket, "new-session", "-d", "-x", "160", "-y", "40"])
            .arg("-c")
            .arg(cwd)
            .arg(format!("bash {}", script.display()))
            .status()
            .unwrap();
        assert!(ok.success(), "tmux new-session");
        Pane { socket }
    }

    fn screen(&self) -> String {
        let out = Command::new(tmux())
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Reads the screen until `seen` holds, or panics with what it showed last.
    fn wait_for(&self, what: &str, seen: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.screen();
            if seen(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "never saw {what}:\n{s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ctrl_c(&self) {
        Command::new(tmux())
            .args(["-L", &self.socket, "send-keys", "C-c"])
            .status()
            .unwrap();
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new(tmux())
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

fn tmux() -> std::path::PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join("tmux");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "tmux is not installed: run `apt-get install -y tmux` (or `bash .ci/install-test-servers`)"
    );
}

/// 30 small files and one of 64 MiB (13 parts of 5 MiB), sent at 16 MiB/s: about 4 s.
fn slow_run(work: &Path, r2: &S3Server, extra: &str) -> String {
    let src = work.join("src");
    write(&src, "big/video.mp4", &bytes_for(7, 64 << 20));
    for i in 0..30 {
        write(&src, &format!("small/{i:02}.txt"), b"a small file");
    }
    format!(
        "env -i HOME={home} TERM=xterm-256color PATH=/usr/bin:/bin \
         R2_ENDPOINT_URL={endpoint} R2_ACCESS_KEY_ID={ACCESS_KEY} R2_SECRET_ACCESS_KEY={SECRET_KEY} \
         {bin} run --from ./src --to r2://media/ --allow-http --max-bandwidth 16MiB \
         --part-size 5MiB --multipart-threshold 8MiB {extra}",
        home = work.display(),
        endpoint = r2.endpoint(),
        bin = env!("CARGO_BIN_EXE_r2migrate"),
    )
}

/// What the bar draws and nothing else prints.
fn has_bar_traces(screen: &str) -> bool {
    screen.contains("ETA") || screen.contains("part ") || screen.contains("[=")
}

#[test]
fn the_bar_shows_percent_rate_eta_and_parts_then_leaves_no_trace() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let work = tempfile::tempdir().unwrap();
    let pane = Pane::start("done", work.path(), &slow_run(work.path(), &r2, ""));
    // Parts travel several at once, so the bytes count (and the rate reads MiB/s) once
    // the first of them is sent.
    let running = pane.wait_for("the bar with a large object's parts", |s| {
        s.contains("ETA") && s.contains("video.mp4: part ") && s.contains("MiB/s")
    });
    let bar = running
        .lines()
        .find(|l| l.contains("ETA"))
        .unwrap()
        .to_string();
    assert!(bar.contains(" run ["), "{bar}");
    assert!(
        bar.contains("of 31 objects") && bar.contains("of 64.0 MiB"),
        "{bar}"
    );
    assert!(bar.contains("%)") && bar.contains("MiB/s"), "{bar}");
    assert!(bar.contains("0 failed, 0 conflicts"), "{bar}");
    assert!(running.contains("of 13, "), "{running}");
    let done = pane.wait_for("the end", |s| s.contains("EXIT="));
    assert!(done.contains("EXIT=0"), "{done}");
    assert!(done.contains("copied 31 (64.0 MiB"), "{done}");
    assert!(
        !has_bar_traces(&done),
        "the bar was left on screen:\n{done}"
    );
    // The summary starts on the first line: the cleared bar left no blank lines above.
    assert!(done.starts_with("run "), "{done}");
}

#[test]
fn ctrl_c_stops_cleanly_with_no_half_drawn_bar() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let work = tempfile::tempdir().unwrap();
    let pane = Pane::start("ctrl-c", work.path(), &slow_run(work.path(), &r2, ""));
    pane.wait_for("a part in flight", |s| s.contains("video.mp4: part "));
    pane.ctrl_c();
    let done = pane.wait_for("the end", |s| s.contains("EXIT="));
    assert!(done.contains("EXIT=130"), "{done}");
    assert!(done.contains("interrupted"), "{done}");
    assert!(!has_bar_traces(&done), "a half-drawn bar:\n{done}");
    assert!(
        done.trim_start().starts_with("error: interrupted"),
        "nothing above the message:\n{done}"
    );
    // The manifest was flushed: every small file is on record.
    let copied = manifest_objects(&work.path().join("r2migrate-manifest.jsonl"))
        .iter()
        .filter(|r| r["status"] == "copied")
        .count();
    assert!(copied >= 30, "{copied} copied on record");
}

#[test]
fn quiet_draws_nothing_on_a_terminal() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let work = tempfile::tempdir().unwrap();
    let pane = Pane::start("quiet", work.path(), &slow_run(work.path(), &r2, "--quiet"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let s = pane.screen();
        assert!(!has_bar_traces(&s) && !s.contains("status "), "{s}");
        if s.contains("EXIT=") {
            break s;
        }
        assert!(Instant::now() < deadline, "{s}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(done.trim(), "EXIT=0");
}

#[test]
fn json_on_a_terminal_draws_no_bar_and_stdout_is_the_document() {
    let r2 = S3Server::start();
    r2.create_bucket("media");
    let work = tempfile::tempdir().unwrap();
    let command = format!("{} > doc.json", slow_run(work.path(), &r2, "--json"));
    let pane = Pane::start("json", work.path(), &command);
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let s = pane.screen();
        assert!(!has_bar_traces(&s), "{s}");
        if s.contains("EXIT=") {
            break s;
        }
        assert!(Instant::now() < deadline, "{s}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(done.contains("EXIT=0"), "{done}");
    // The human summary went to the terminal (stderr); stdout is one document.
    assert!(done.contains("copied 31"), "{done}");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.path().join("doc.json")).unwrap()).unwrap();
    assert_eq!(doc["counts"]["copied"], 31);
}
