//! Where the server is, who the user is and where the outbox lives.
//!
//! Each setting is taken from the first place that has it: the flag, then the environment
//! (`CHAT_URL`, `CHAT_TOKEN`, `CHAT_STORE`, `CHAT_CA_FILE`; clap reads both), then the
//! optional config file (`--config`/`CHAT_CONFIG`, else `<config dir>/chat/config.toml`),
//! then the default. The file is TOML with the keys `url`, `token`, `store` and `ca`:
//!
//! ```toml
//! url = "http://127.0.0.1:7070"
//! token = "eyJ..."
//! store = "/home/alice/.local/share/chat/alice.db"
//! ca = "/etc/chat/ca.pem"   # only for an https:// server with a private CA
//! ```

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::cli::ClientArgs;
use crate::fail::Fail;

/// The URL used when none is configured: where `chat serve` listens by default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:7070";

/// The contents of the config file.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Server URL.
    pub url: Option<String>,
    /// Token.
    pub token: Option<String>,
    /// Outbox file.
    pub store: Option<PathBuf>,
    /// Extra root certificate (PEM) for an https:// server.
    pub ca: Option<PathBuf>,
}

/// Settings after flags, environment, file and defaults were merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Server URL.
    pub url: String,
    /// Token, if any was configured.
    pub token: Option<String>,
    /// Outbox file.
    pub store: PathBuf,
    /// Extra root certificate (PEM) to trust, if any.
    pub ca: Option<PathBuf>,
}

impl Settings {
    /// The token, or the usage error that says how to give one.
    pub fn token(&self) -> Result<&str, Fail> {
        self.token.as_deref().ok_or_else(|| {
            Fail::usage("no token: pass --token, set CHAT_TOKEN (chat token <user>), or add token to the config file")
        })
    }
}

/// Reads the config file: the explicit one must exist, the default one may not.
fn read_file(args: &ClientArgs) -> Result<FileConfig, Fail> {
    let (path, explicit) = match &args.config {
        Some(path) => (path.clone(), true),
        None => match dirs::config_dir() {
            Some(dir) => (dir.join("chat").join("config.toml"), false),
            None => return Ok(FileConfig::default()),
        },
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_file(&text)
            .map_err(|e| Fail::usage(format!("config file {}: {e}", path.display()))),
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
            Ok(FileConfig::default())
        }
        Err(e) => Err(Fail::usage(format!(
            "cannot read config file {}: {e}",
            path.display()
        ))),
    }
}

/// Parses the config file's text.
pub fn parse_file(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.message().to_owned())
}

/// The `sub` claim of a JWT, read without verifying it (the server does): it names the
/// default outbox file.
pub fn token_subject(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let sub = claims.get("sub")?.as_str()?;
    chat_protocol::UserId::new(sub).ok().map(String::from)
}

/// The default outbox file of `user`.
fn default_store(user: &str) -> Result<PathBuf, Fail> {
    let dir = dirs::data_local_dir()
        .ok_or_else(|| Fail::usage("no data directory: pass --store or set CHAT_STORE"))?;
    Ok(dir.join("chat").join(format!("{user}.db")))
}

/// Merges flags and environment (already in `args`), the config file and the defaults.
pub fn resolve(args: &ClientArgs) -> Result<Settings, Fail> {
    let file = read_file(args)?;
    merge(args, file, default_store)
}

/// The merge itself, apart from the file system so it can be tested.
pub fn merge(
    args: &ClientArgs,
    file: FileConfig,
    default_store: impl Fn(&str) -> Result<PathBuf, Fail>,
) -> Result<Settings, Fail> {
    let url = args
        .url
        .clone()
        .or(file.url)
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(Fail::usage(format!(
            "invalid server URL {url:?}: it must start with http:// or https://"
        )));
    }
    let token = args
        .token
        .clone()
        .or(file.token)
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let store = match args.store.clone().or(file.store) {
        Some(store) => store,
        None => {
            let user = token.as_deref().and_then(token_subject).ok_or_else(|| {
                Fail::usage("no outbox file: pass --store or set CHAT_STORE (or give a token naming the user)")
            })?;
            default_store(&user)?
        }
    };
    if let Some(parent) = store.parent().filter(|p| !p.as_os_str().is_empty()) {
        ensure_dir(parent)?;
    }
    let ca = args.ca.clone().or(file.ca);
    Ok(Settings {
        url,
        token,
        store,
        ca,
    })
}

fn ensure_dir(dir: &Path) -> Result<(), Fail> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Fail::usage(format!("cannot create {}: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_for(sub: &str) -> String {
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!(r#"{{"sub":"{sub}","exp":1}}"#));
        format!("eyJhbGciOiJIUzI1NiJ9.{claims}.sig")
    }

    fn no_default(_: &str) -> Result<PathBuf, Fail> {
        Err(Fail::usage("none"))
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let args = ClientArgs {
            url: Some("http://flag:1".into()),
            ..ClientArgs::default()
        };
        let file = FileConfig {
            url: Some("http://file:2".into()),
            token: Some(token_for("carol")),
            store: None,
            ca: Some("file-ca.pem".into()),
        };
        let settings =
            merge(&args, file, |user| Ok(PathBuf::from(format!("{user}.db")))).expect("merges");
        assert_eq!(settings.url, "http://flag:1");
        assert_eq!(settings.token, Some(token_for("carol")));
        assert_eq!(settings.store, PathBuf::from("carol.db"));
        assert_eq!(settings.ca, Some(PathBuf::from("file-ca.pem")));
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let args = ClientArgs {
            store: Some("x.db".into()),
            ..ClientArgs::default()
        };
        let settings = merge(&args, FileConfig::default(), no_default).expect("merges");
        assert_eq!(settings.url, DEFAULT_URL);
        assert_eq!(settings.token, None);
        assert!(settings.token().is_err());
    }

    #[test]
    fn a_bad_url_or_no_store_is_a_usage_error() {
        let args = ClientArgs {
            url: Some("ftp://x".into()),
            store: Some("x.db".into()),
            ..ClientArgs::default()
        };
        let err = merge(&args, FileConfig::default(), no_default).expect_err("bad url");
        assert_eq!(err.code, crate::fail::USAGE);
        let err =
            merge(&ClientArgs::default(), FileConfig::default(), no_default).expect_err("no store");
        assert_eq!(err.code, crate::fail::USAGE);
    }

    #[test]
    fn the_file_is_toml_with_three_keys() {
        let file = parse_file("url = \"http://h:1\"\nstore = \"/tmp/a.db\"\n").expect("parses");
        assert_eq!(file.url.as_deref(), Some("http://h:1"));
        assert!(parse_file("colour = true").is_err());
    }

    #[test]
    fn token_subject_reads_sub() {
        assert_eq!(token_subject(&token_for("alice")).as_deref(), Some("alice"));
        assert_eq!(token_subject("nonsense"), None);
    }
}
