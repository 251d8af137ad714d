//! Debian's PostgreSQL 15 for the tests: `initdb` into a temp dir as the `postgres` user,
//! password (SCRAM) authentication on, TLS on with a throwaway certificate for
//! `localhost` / 127.0.0.1, on a free loopback port; stopped when dropped. A machine
//! without it fails the test with what to install, never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const PG_PASSWORD: &str = "pg-test-password-not-secret-elsewhere";

pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

fn pg_bin() -> PathBuf {
    for v in ["15", "16", "17"] {
        let dir = PathBuf::from(format!("/usr/lib/postgresql/{v}/bin"));
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    panic!("PostgreSQL is not installed: apt-get install postgresql-15 (.ci/install-test-servers does)");
}

/// Runs a command as the `postgres` user, failing loudly with its output.
fn as_postgres(bin: &Path, args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin)
        .args(args)
        .output()
        .expect("runuser");
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}{}",
        bin.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = pg_bin();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let data = root.join("data");
        let pwfile = root.join("pw");
        std::fs::write(&pwfile, PG_PASSWORD).unwrap();
        super::certs::make(root);
        Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(root)
            .status()
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        // PostgreSQL refuses a key others can read.
        std::fs::set_permissions(
            root.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let data_s = data.to_string_lossy().into_owned();
        let pw_s = format!("--pwfile={}", pwfile.display());
        as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                &pw_s,
                "-E",
                "UTF8",
            ],
        );
        let port = super::free_port();
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={} -c ssl_key_file={} -c fsync=off",
            root.display(),
            root.join("server.crt").display(),
            root.join("server.key").display()
        );
        let log = root.join("pg.log").to_string_lossy().into_owned();
        as_postgres(
            &bin.join("pg_ctl"),
            &["-D", &data_s, "-l", &log, "-o", &opts, "-w", "start"],
        );
        Postgres { port, dir, bin }
    }

    /// The CA certificate a `verify-full` client trusts.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    pub fn url(&self, db: &str, params: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}{params}", self.port)
    }

    /// A client for setting up and checking tables (no TLS; password auth).
    pub async fn client(&self, db: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .password(PG_PASSWORD)
            .dbname(db)
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect to the test PostgreSQL");
        tokio::spawn(conn);
        client
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").to_string_lossy().into_owned();
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}
