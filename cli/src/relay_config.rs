//! The relay's settings: built-in defaults, then a TOML file (`--config relay.toml`), then
//! `ALLIANCE_RELAY_*` environment variables, then command-line flags, each over the last.
//! An unknown key or a bad value stops the relay at start with the key named
//! (see `deploy/relay.toml` and `docs/operations.md`, Configuration).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alliance_core::sync::RelayOptions;
use alliance_core::{Error, Result};

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything `alliance relay` runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct RelayConfig {
    /// The store file; None: the global `--db`.
    pub db: Option<PathBuf>,
    /// The store's key file; None: the global `--key-file` (or none: plaintext).
    pub key_file: Option<PathBuf>,
    /// A PostgreSQL database to store in instead of the SQLite file (`postgres://…`): any
    /// number of relays may share it (docs/operations.md). Never printed: it may hold a
    /// password.
    pub store: Option<String>,
    pub listen: String,
    pub no_auth: bool,
    pub open_enrollment: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`); off when None.
    pub admin: Option<SocketAddr>,
    pub log_format: LogFormat,
    /// How long a drain (SIGTERM, SIGINT) lets syncs in flight finish.
    pub drain_grace: Duration,
    pub max_frame_bytes: usize,
    pub max_documents_per_connection: usize,
    pub max_connections_per_token: usize,
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        let limits = RelayOptions::default();
        Self {
            db: None,
            key_file: None,
            store: None,
            listen: "127.0.0.1:8420".into(),
            no_auth: false,
            open_enrollment: false,
            tls_cert: None,
            tls_key: None,
            admin: None,
            log_format: LogFormat::Text,
            drain_grace: Duration::from_secs(30),
            max_frame_bytes: limits.max_frame_bytes,
            max_documents_per_connection: limits.max_documents_per_connection,
            max_connections_per_token: limits.max_connections_per_token,
            idle_timeout: limits.idle_timeout,
            handshake_timeout: limits.handshake_timeout,
        }
    }
}

/// The keys a file may hold (`[limits]` ones as `limits.NAME`), each with its environment
/// variable: `ALLIANCE_RELAY_` and the key in capitals, `.` as `_`.
pub const KEYS: &[&str] = &[
    "db",
    "key_file",
    "store",
    "listen",
    "no_auth",
    "open_enrollment",
    "tls_cert",
    "tls_key",
    "admin",
    "log_format",
    "drain_grace_secs",
    "limits.max_frame_bytes",
    "limits.max_documents_per_connection",
    "limits.max_connections_per_token",
    "limits.idle_timeout_secs",
    "limits.handshake_timeout_secs",
];

/// The environment variable of `key`.
pub fn env_name(key: &str) -> String {
    format!(
        "ALLIANCE_RELAY_{}",
        key.replace('.', "_").to_ascii_uppercase()
    )
}

/// A value before it is checked: from the file (typed TOML) or the environment (text).
enum Raw {
    Toml(toml::Value),
    Env(String),
}

impl Raw {
    fn describe(&self) -> String {
        match self {
            Raw::Toml(toml::Value::String(text)) => format!("{text:?}"),
            Raw::Toml(toml::Value::Integer(value)) => value.to_string(),
            Raw::Toml(toml::Value::Float(value)) => value.to_string(),
            Raw::Toml(toml::Value::Boolean(value)) => value.to_string(),
            Raw::Toml(toml::Value::Datetime(_)) => "a date-time".into(),
            Raw::Toml(toml::Value::Array(_)) => "an array".into(),
            Raw::Toml(toml::Value::Table(_)) => "a table".into(),
            Raw::Env(text) => format!("{text:?}"),
        }
    }
}

fn bad(origin: &str, key: &str, expected: &str, raw: &Raw) -> Error {
    Error::InvalidInput {
        field: "relay configuration",
        reason: format!(
            "{origin}: `{key}` must be {expected}, found {}",
            raw.describe()
        ),
    }
}

fn string(origin: &str, key: &str, raw: &Raw) -> Result<String> {
    match raw {
        Raw::Toml(toml::Value::String(text)) => Ok(text.clone()),
        Raw::Env(text) => Ok(text.clone()),
        _ => Err(bad(origin, key, "a string", raw)),
    }
}

fn boolean(origin: &str, key: &str, raw: &Raw) -> Result<bool> {
    match raw {
        Raw::Toml(toml::Value::Boolean(value)) => Ok(*value),
        Raw::Env(text) if text == "true" || text == "1" => Ok(true),
        Raw::Env(text) if text == "false" || text == "0" => Ok(false),
        _ => Err(bad(origin, key, "true or false", raw)),
    }
}

/// A whole number in `1..=max`.
fn count(origin: &str, key: &str, raw: &Raw, max: u64) -> Result<u64> {
    let value = match raw {
        Raw::Toml(toml::Value::Integer(value)) => u64::try_from(*value).ok(),
        Raw::Env(text) => text.trim().parse::<u64>().ok(),
        _ => None,
    };
    match value {
        Some(value) if (1..=max).contains(&value) => Ok(value),
        _ => Err(bad(
            origin,
            key,
            &format!("a whole number from 1 to {max}"),
            raw,
        )),
    }
}

fn address(origin: &str, key: &str, raw: &Raw) -> Result<SocketAddr> {
    string(origin, key, raw)?
        .parse()
        .map_err(|_| bad(origin, key, "an address IP:PORT (e.g. 127.0.0.1:9420)", raw))
}

/// One hour, in seconds: the longest grace or timeout accepted.
const MAX_SECS: u64 = 24 * 3600;

impl RelayConfig {
    /// Applies `raw` to `key`, checking it; `origin` names where it came from in errors.
    fn set(&mut self, origin: &str, key: &str, raw: &Raw) -> Result<()> {
        match key {
            "db" => self.db = Some(string(origin, key, raw)?.into()),
            "key_file" => self.key_file = Some(string(origin, key, raw)?.into()),
            "store" => {
                let url = string(origin, key, raw)?;
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    // The value itself is not echoed: it may hold a password.
                    return Err(Error::InvalidInput {
                        field: "relay configuration",
                        reason: format!(
                            "{origin}: `{key}` must be a postgres:// or postgresql:// URL"
                        ),
                    });
                }
                self.store = Some(url);
            }
            "listen" => {
                let text = string(origin, key, raw)?;
                match text.rsplit_once(':') {
                    Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                        self.listen = text
                    }
                    _ => return Err(bad(origin, key, "an address HOST:PORT", raw)),
                }
            }
            "no_auth" => self.no_auth = boolean(origin, key, raw)?,
            "open_enrollment" => self.open_enrollment = boolean(origin, key, raw)?,
            "tls_cert" => self.tls_cert = Some(string(origin, key, raw)?.into()),
            "tls_key" => self.tls_key = Some(string(origin, key, raw)?.into()),
            "admin" => self.admin = Some(address(origin, key, raw)?),
            "log_format" => {
                self.log_format = match string(origin, key, raw)?.as_str() {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => return Err(bad(origin, key, "\"text\" or \"json\"", raw)),
                }
            }
            "drain_grace_secs" => {
                self.drain_grace = Duration::from_secs(count(origin, key, raw, MAX_SECS)?)
            }
            "limits.max_frame_bytes" => {
                self.max_frame_bytes = count(origin, key, raw, 1 << 30)? as usize
            }
            "limits.max_documents_per_connection" => {
                self.max_documents_per_connection = count(origin, key, raw, 1 << 20)? as usize
            }
            "limits.max_connections_per_token" => {
                self.max_connections_per_token = count(origin, key, raw, 1 << 16)? as usize
            }
            "limits.idle_timeout_secs" => {
                self.idle_timeout = Duration::from_secs(count(origin, key, raw, MAX_SECS)?)
            }
            "limits.handshake_timeout_secs" => {
                self.handshake_timeout = Duration::from_secs(count(origin, key, raw, MAX_SECS)?)
            }
            _ => {
                return Err(Error::InvalidInput {
                    field: "relay configuration",
                    reason: format!("{origin}: unknown key `{key}` (known: {})", KEYS.join(", ")),
                })
            }
        }
        Ok(())
    }

    /// Applies a command-line flag's value to `key`.
    pub fn apply_flag(&mut self, key: &str, value: String) -> Result<()> {
        self.set("command line", key, &Raw::Env(value))
    }

    /// Applies the TOML text of a configuration file (`origin` names it in errors).
    pub fn apply_toml(&mut self, origin: &str, text: &str) -> Result<()> {
        let table: toml::Table =
            text.parse()
                .map_err(|error: toml::de::Error| Error::InvalidInput {
                    field: "relay configuration",
                    reason: format!("{origin}: not valid TOML: {}", error.message()),
                })?;
        for (key, value) in table {
            match (key.as_str(), value) {
                ("limits", toml::Value::Table(limits)) => {
                    for (name, value) in limits {
                        self.set(origin, &format!("limits.{name}"), &Raw::Toml(value))?;
                    }
                }
                (_, value) => self.set(origin, &key, &Raw::Toml(value))?,
            }
        }
        Ok(())
    }

    /// Applies every `ALLIANCE_RELAY_*` variable of `vars`; one that names no key is refused.
    pub fn apply_env(&mut self, vars: impl Iterator<Item = (String, String)>) -> Result<()> {
        for (name, value) in vars {
            let Some(_) = name.strip_prefix("ALLIANCE_RELAY_") else {
                continue;
            };
            match KEYS.iter().find(|key| env_name(key) == name) {
                Some(key) => self.set(&name, key, &Raw::Env(value))?,
                None => {
                    return Err(Error::InvalidInput {
                        field: "relay configuration",
                        reason: format!("{name}: no such setting (known: {})", {
                            let names: Vec<String> = KEYS.iter().map(|k| env_name(k)).collect();
                            names.join(", ")
                        }),
                    })
                }
            }
        }
        Ok(())
    }

    /// Defaults, then the file at `path` (if any), then the process's environment.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let mut config = Self::default();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|error| Error::InvalidInput {
                field: "relay configuration",
                reason: format!("cannot read {}: {error}", path.display()),
            })?;
            config.apply_toml(&path.display().to_string(), &text)?;
        }
        config.apply_env(std::env::vars())?;
        Ok(config)
    }

    /// Checks what only makes sense together.
    pub fn check(&self) -> Result<()> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(Error::InvalidInput {
                field: "relay configuration",
                reason: "`tls_cert` and `tls_key` go together: give both or neither".into(),
            });
        }
        if self.store.is_some() && self.admin.is_some() {
            return Err(Error::InvalidInput {
                field: "relay configuration",
                reason: "`admin` is not available yet with a PostgreSQL `store`".into(),
            });
        }
        if self.no_auth && self.open_enrollment {
            return Err(Error::InvalidInput {
                field: "relay configuration",
                reason: "`open_enrollment` needs tokens: it cannot go with `no_auth`".into(),
            });
        }
        Ok(())
    }

    /// The relay's limits and authentication (TLS and metrics are added by the caller).
    pub fn options(&self) -> RelayOptions {
        RelayOptions {
            max_frame_bytes: self.max_frame_bytes,
            handshake_timeout: self.handshake_timeout,
            require_token: !self.no_auth,
            open_enrollment: self.open_enrollment,
            max_documents_per_connection: self.max_documents_per_connection,
            max_connections_per_token: self.max_connections_per_token,
            idle_timeout: self.idle_timeout,
            ..RelayOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_sets_every_key_and_the_environment_wins() {
        let mut config = RelayConfig::default();
        config
            .apply_toml(
                "relay.toml",
                r#"
                db = "/var/lib/alliance/relay.db"
                key_file = "/etc/alliance/relay.key"
                listen = "0.0.0.0:8420"
                no_auth = false
                open_enrollment = true
                tls_cert = "/etc/alliance/cert.pem"
                tls_key = "/etc/alliance/key.pem"
                admin = "127.0.0.1:9420"
                log_format = "json"
                drain_grace_secs = 20
                [limits]
                max_frame_bytes = 1048576
                max_documents_per_connection = 100
                max_connections_per_token = 4
                idle_timeout_secs = 60
                handshake_timeout_secs = 5
                "#,
            )
            .unwrap();
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.max_frame_bytes, 1 << 20);
        assert_eq!(config.admin, Some("127.0.0.1:9420".parse().unwrap()));
        config
            .apply_env(
                [
                    (
                        "ALLIANCE_RELAY_LIMITS_MAX_FRAME_BYTES".into(),
                        "2048".into(),
                    ),
                    ("ALLIANCE_RELAY_OPEN_ENROLLMENT".into(), "false".into()),
                    ("PATH".into(), "/bin".into()),
                ]
                .into_iter(),
            )
            .unwrap();
        assert_eq!(config.max_frame_bytes, 2048);
        assert!(!config.open_enrollment);
        config.check().unwrap();
        assert_eq!(config.options().max_connections_per_token, 4);
    }

    #[test]
    fn every_key_has_a_variable() {
        for key in KEYS {
            let name = env_name(key);
            assert!(name.starts_with("ALLIANCE_RELAY_"), "{name}");
            assert!(!name.contains('.'), "{name}");
        }
    }

    #[test]
    fn a_bad_key_or_value_is_refused_naming_the_key() {
        let cases = [
            ("lisen = \"127.0.0.1:1\"", "lisen"),
            ("[limits]\nmax_frames = 3", "limits.max_frames"),
            ("listen = \"nowhere\"", "`listen`"),
            ("[limits]\nmax_frame_bytes = -1", "`limits.max_frame_bytes`"),
            (
                "[limits]\nidle_timeout_secs = \"ten\"",
                "`limits.idle_timeout_secs`",
            ),
            ("log_format = \"xml\"", "`log_format`"),
            ("no_auth = \"yes\"", "`no_auth`"),
        ];
        for (text, key) in cases {
            let error = RelayConfig::default()
                .apply_toml("relay.toml", text)
                .unwrap_err()
                .to_string();
            assert!(error.contains(key), "{text}: {error}");
            assert!(error.contains("relay.toml"), "{text}: {error}");
        }
        let error = RelayConfig::default()
            .apply_env([("ALLIANCE_RELAY_LISTN".into(), "x".into())].into_iter())
            .unwrap_err()
            .to_string();
        assert!(error.contains("ALLIANCE_RELAY_LISTN"), "{error}");
        let error = RelayConfig::default()
            .apply_env([("ALLIANCE_RELAY_ADMIN".into(), "localhost".into())].into_iter())
            .unwrap_err()
            .to_string();
        assert!(error.contains("`admin`"), "{error}");
    }

    #[test]
    fn the_store_is_a_postgres_url_never_echoed() {
        let mut config = RelayConfig::default();
        let url = "postgres://alliance:s3cret@db.internal:5432/alliance";
        config
            .apply_env([("ALLIANCE_RELAY_STORE".into(), url.into())].into_iter())
            .unwrap();
        assert_eq!(config.store.as_deref(), Some(url));
        config.check().unwrap();
        let error = RelayConfig::default()
            .apply_toml("relay.toml", "store = \"mysql://root:s3cret@db/alliance\"")
            .unwrap_err()
            .to_string();
        assert!(error.contains("`store`"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
        // The admin listener reads a SQLite store: refused with a PostgreSQL one, for now.
        config.admin = Some("127.0.0.1:9420".parse().unwrap());
        assert!(config.check().unwrap_err().to_string().contains("`admin`"));
    }
}
