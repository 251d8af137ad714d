//! How `rewrite-urls` reaches a MySQL or MariaDB server: the `mysql://` / `mariadb://`
//! URL (user, host, port, database, `ssl-mode`, `ssl-ca`), the password by MySQL's own
//! conventions (`MYSQL_PWD`, else the `[client]` group of `~/.my.cnf`; never the URL or
//! the config file), and which characters a column's character set can hold, so that a
//! rewritten value is never stored with `?` in place of a character.

use std::path::{Path, PathBuf};

use super::{redact, OpenError};

/// MySQL's `--ssl-mode`, with its meanings: PREFERRED encrypts when the server offers
/// it, REQUIRED always encrypts without authenticating the server, VERIFY_CA checks the
/// chain, VERIFY_IDENTITY the chain and the host name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disabled,
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub ssl_mode: SslMode,
    /// `ssl-ca`: the only roots trusted when given (else the built-in Mozilla roots).
    pub ssl_ca: Option<PathBuf>,
    /// The URL without user info, for messages.
    pub shown: String,
}

/// Whether `database` names a MySQL or MariaDB server.
pub fn is_mysql(database: &str) -> bool {
    database.starts_with("mysql://") || database.starts_with("mariadb://")
}

/// The settings a `mysql://user@host:port/db?ssl-mode=…&ssl-ca=…` URL gives. A password
/// in the URL, or a parameter r2migrate does not know, is a usage error.
pub fn settings_of(database: &str) -> Result<Settings, OpenError> {
    let shown = redact(database);
    let url = url::Url::parse(database)
        .map_err(|e| OpenError::Usage(format!("{shown}: not a MySQL URL ({e})")))?;
    if url.password().is_some() {
        return Err(OpenError::Usage(format!(
            "{shown}: a password in the database URL is refused (it would end up in shell history and logs); put it in MYSQL_PWD or the [client] group of ~/.my.cnf"
        )));
    }
    let db = url.path().trim_start_matches('/').to_string();
    if db.is_empty() || db.contains('/') {
        return Err(OpenError::Usage(format!(
            "{shown}: name the database in the URL: mysql://user@host:3306/DATABASE"
        )));
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut ssl_mode = SslMode::Preferred;
    let mut ssl_ca = None;
    for (k, v) in url.query_pairs() {
        match k.replace('_', "-").to_ascii_lowercase().as_str() {
            "ssl-mode" => {
                ssl_mode = match v.to_ascii_uppercase().as_str() {
                    "DISABLED" => SslMode::Disabled,
                    "PREFERRED" => SslMode::Preferred,
                    "REQUIRED" => SslMode::Required,
                    "VERIFY_CA" => SslMode::VerifyCa,
                    "VERIFY_IDENTITY" => SslMode::VerifyIdentity,
                    other => return Err(OpenError::Usage(format!(
                        "{shown}: ssl-mode={other} is not known; use DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY"
                    ))),
                }
            }
            "ssl-ca" => ssl_ca = Some(PathBuf::from(v.as_ref())),
            "password" => {
                return Err(OpenError::Usage(format!(
                    "{shown}: a password in the database URL is refused; put it in MYSQL_PWD or the [client] group of ~/.my.cnf"
                )))
            }
            _ => {
                return Err(OpenError::Usage(format!(
                    "{shown}: the parameter {k:?} is not supported (ssl-mode and ssl-ca are)"
                )))
            }
        }
    }
    if ssl_ca.is_some() && matches!(ssl_mode, SslMode::Disabled | SslMode::Preferred) {
        // As the mysql client: naming a CA asks for the server to be checked against it.
        ssl_mode = SslMode::VerifyCa;
    }
    let user = if url.username().is_empty() {
        option_file()
            .and_then(|f| client_option(&f, "user"))
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "root".into())
    } else {
        decode(url.username())
    };
    Ok(Settings {
        host: decode(url.host_str().unwrap_or("localhost")),
        port: url.port().unwrap_or(3306),
        user,
        database: decode(&db),
        ssl_mode,
        ssl_ca,
        shown,
    })
}

/// `MYSQL_PWD`, else `password` in the `[client]` group of `~/.my.cnf`.
pub fn password() -> Option<String> {
    if let Ok(pw) = std::env::var("MYSQL_PWD") {
        return Some(pw);
    }
    client_option(&option_file()?, "password")
}

/// `~/.my.cnf`, unless anyone may write it (the mysql client ignores such a file too).
fn option_file() -> Option<PathBuf> {
    let file = Path::new(&std::env::var_os("HOME")?).join(".my.cnf");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).ok()?.permissions().mode();
    if mode & 0o002 != 0 {
        tracing::warn!(
            "{}: ignored, since anyone may write it (chmod 0600 it)",
            file.display()
        );
        return None;
    }
    Some(file)
}

/// The value of `name` in the `[client]` group of an option file, read as the mysql
/// client reads it: `name = value`, `-` and `_` alike, quotes optional, `#`/`;` comments,
/// `\n \t \\ \s` escapes; the last setting wins.
fn client_option(file: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    client_option_in(&text, name)
}

fn client_option_in(text: &str, name: &str) -> Option<String> {
    let mut in_client = false;
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(group) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_client = group.trim().eq_ignore_ascii_case("client");
            continue;
        }
        if !in_client {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        if key.trim().replace('-', "_") == name {
            found = Some(option_value(value.trim()));
        }
    }
    found
}

fn option_value(raw: &str) -> String {
    let mut chars = raw.chars().peekable();
    let quote = match chars.peek() {
        Some(&q @ ('"' | '\'')) => {
            chars.next();
            Some(q)
        }
        _ => None,
    };
    let mut out = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('b') => out.push('\u{8}'),
                Some('s') => out.push(' '),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            c if Some(c) == quote => break,
            '#' if quote.is_none() => break,
            c => out.push(c),
        }
    }
    if quote.is_none() {
        out.truncate(out.trim_end().len());
    }
    out
}

/// The character sets whose columns r2migrate rewrites: each converts to and from the
/// connection's utf8mb4 without loss for every character it holds.
pub const CHARSETS: [&str; 5] = ["utf8mb4", "utf8mb3", "utf8", "latin1", "ascii"];

/// Whether a column in `charset` can store every character of `text`. MySQL's latin1
/// is Windows-1252 with its five unassigned bytes kept as the C1 controls.
pub fn holds(charset: &str, text: &str) -> bool {
    match charset {
        "utf8mb4" => true,
        "utf8mb3" | "utf8" => text.chars().all(|c| (c as u32) <= 0xFFFF),
        "ascii" => text.is_ascii(),
        "latin1" => text.chars().all(in_latin1),
        _ => text.is_ascii(),
    }
}

fn in_latin1(c: char) -> bool {
    const CP1252_HIGH: &str = "€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ";
    let n = c as u32;
    n <= 0x7F
        || (0xA0..=0xFF).contains(&n)
        || [0x81, 0x8D, 0x8F, 0x90, 0x9D].contains(&n)
        || CP1252_HIGH.contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_refused_and_never_repeated() {
        for url in [
            "mysql://wp:hunter2@db.test:3306/wordpress",
            "mariadb://wp@db.test/wordpress?password=hunter2",
        ] {
            let Err(OpenError::Usage(m)) = settings_of(url) else {
                panic!("accepted a password in {url}");
            };
            assert!(m.contains("MYSQL_PWD") && !m.contains("hunter2"), "{m}");
        }
    }

    #[test]
    fn urls_give_host_port_database_and_ssl_mode() {
        let s =
            settings_of("mariadb://wp@db.test/wordpress?ssl-mode=verify_identity&ssl-ca=/ca.pem")
                .unwrap();
        assert_eq!(
            (
                s.host.as_str(),
                s.port,
                s.user.as_str(),
                s.database.as_str()
            ),
            ("db.test", 3306, "wp", "wordpress")
        );
        assert_eq!(s.ssl_mode, SslMode::VerifyIdentity);
        assert_eq!(s.ssl_ca, Some(PathBuf::from("/ca.pem")));
        assert_eq!(
            settings_of("mysql://wp@db.test:3307/wp").unwrap().ssl_mode,
            SslMode::Preferred
        );
        assert_eq!(
            settings_of("mysql://wp@db.test/wp?ssl-ca=/ca.pem")
                .unwrap()
                .ssl_mode,
            SslMode::VerifyCa
        );
        for bad in [
            "mysql://wp@db.test/wp?ssl-mode=sometimes",
            "mysql://wp@db.test/wp?charset=latin1",
            "mysql://wp@db.test/",
        ] {
            assert!(
                matches!(settings_of(bad), Err(OpenError::Usage(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn option_files_are_read_as_the_mysql_client_reads_them() {
        let text = "# mine\n[mysql]\npassword=not-this\n[client]\nuser = wp\npassword = \"pa ss#1\\\\x\" # comment\n[mysqldump]\npassword=nor-this\n";
        assert_eq!(
            client_option_in(text, "password").as_deref(),
            Some("pa ss#1\\x")
        );
        assert_eq!(client_option_in(text, "user").as_deref(), Some("wp"));
        assert_eq!(
            client_option_in("[client]\npassword=plain # note\n", "password").as_deref(),
            Some("plain")
        );
        assert_eq!(client_option_in("[mysql]\npassword=x\n", "password"), None);
    }

    #[test]
    fn character_sets_hold_what_they_can_store() {
        assert!(holds("latin1", "café – “quoted” €5"));
        assert!(!holds("latin1", "→ https://x"));
        assert!(holds("utf8mb3", "→"));
        assert!(!holds("utf8mb3", "🎉"));
        assert!(holds("utf8mb4", "🎉"));
        assert!(!holds("ascii", "é"));
        // All 256 of latin1's bytes decode (as Windows-1252 and the C1 controls) to
        // characters it holds, and 256 distinct ones.
        let all: std::collections::HashSet<char> = (0u32..=0xFF)
            .map(|b| {
                let high = "€\u{81}‚ƒ„…†‡ˆ‰Š‹Œ\u{8D}Ž\u{8F}\u{90}‘’“”•–—˜™š›œ\u{9D}žŸ";
                if (0x80..0xA0).contains(&b) {
                    high.chars().nth((b - 0x80) as usize).unwrap()
                } else {
                    char::from_u32(b).unwrap()
                }
            })
            .collect();
        assert_eq!(all.len(), 256);
        assert!(all.iter().all(|&c| in_latin1(c)));
    }
}
