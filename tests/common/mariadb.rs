//! Debian's MariaDB for the tests: `mariadb-install-db` into a temp dir, `mariadbd` on a
//! free loopback port with TLS on (a throwaway certificate for localhost / 127.0.0.1),
//! the server's default character set latin1 as Debian's own is not, and a `wp` user
//! with a password; killed when dropped. A machine without it fails the test with what
//! to install, never skips.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const MY_PASSWORD: &str = "my-test-password-not-secret-elsewhere";
pub const USER: &str = "wp";

pub struct MariaDb {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

fn require(bin: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin"] {
        let p = PathBuf::from(dir).join(bin);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{bin} is not installed: apt-get install mariadb-server (.ci/install-test-servers does)"
    );
}

impl MariaDb {
    pub fn start() -> MariaDb {
        let (install, server, client) = (
            require("mariadb-install-db"),
            require("mariadbd"),
            require("mariadb"),
        );
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        super::certs::make(root);
        let data = root.join("data");
        let as_root = unsafe { libc::geteuid() } == 0;
        let user = if as_root {
            "--user=root".to_string()
        } else {
            format!("--user={}", std::env::var("USER").unwrap_or_default())
        };
        let out = Command::new(&install)
            .args(["--no-defaults", "--auth-root-authentication-method=normal"])
            .args(["--skip-test-db", &user])
            .arg(format!("--datadir={}", data.display()))
            .output()
            .expect("mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = super::free_port();
        let socket = root.join("sock");
        let p = |name: &str| root.join(name).display().to_string();
        let mut cmd = Command::new(&server);
        cmd.arg("--no-defaults");
        if as_root {
            cmd.arg("--user=root");
        }
        let child = cmd
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", p("pid")))
            .arg(format!("--log-error={}", p("error.log")))
            .args(["--skip-name-resolve", "--innodb-buffer-pool-size=32M"])
            .args(["--innodb-flush-log-at-trx-commit=2", "--skip-log-bin"])
            .args([
                "--character-set-server=latin1",
                "--collation-server=latin1_swedish_ci",
            ])
            .arg(format!("--ssl-cert={}", p("server.crt")))
            .arg(format!("--ssl-key={}", p("server.key")))
            .arg(format!("--ssl-ca={}", p("ca.crt")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let db = MariaDb { port, dir, child };
        // As root over the socket (no password yet): the `wp` user the tests connect as.
        let setup = format!(
            "CREATE USER '{USER}'@'%' IDENTIFIED BY '{MY_PASSWORD}'; GRANT ALL ON *.* TO '{USER}'@'%';"
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new(&client)
                .args(["--no-defaults", "-uroot"])
                .arg(format!("--socket={}", socket.display()))
                .args(["-e", &setup])
                .output()
                .expect("mariadb client");
            if out.status.success() {
                break;
            }
            let log = std::fs::read_to_string(db.dir.path().join("error.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "MariaDB did not start: {}\n{log}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        db
    }

    /// The CA certificate a VERIFY_CA / VERIFY_IDENTITY client trusts.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    pub fn url(&self, db: &str, params: &str) -> String {
        format!("mariadb://{USER}@127.0.0.1:{}/{db}{params}", self.port)
    }

    /// A client for setting up and checking tables (no TLS; password auth; utf8mb4).
    pub async fn conn(&self, db: Option<&str>) -> mysql_async::Conn {
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .user(Some(USER))
            .pass(Some(MY_PASSWORD))
            .db_name(db)
            .prefer_socket(false)
            .init(vec!["SET NAMES utf8mb4"]);
        mysql_async::Conn::new(opts)
            .await
            .expect("connect to the test MariaDB")
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
