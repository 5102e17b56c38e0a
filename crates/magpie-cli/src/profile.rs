//! Owns the on-disk profiles: one JSON file per profile name in the config
//! directory, holding the server, identity and tokens (and where `listen`
//! left off, so the next run does not replay old messages).

use crate::error::CliError;
use magpie_core::{ConvId, DeviceId, Seq, UserId};
use magpie_proto::http::Tokens;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub server: String,
    pub username: String,
    pub user_id: UserId,
    pub device: DeviceId,
    pub access_token: String,
    pub refresh_token: String,
    /// Per conversation, the last sequence `listen` printed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub positions: BTreeMap<ConvId, Seq>,
}

impl Profile {
    pub fn from_login(server: &str, username: &str, t: Tokens) -> Profile {
        Profile {
            server: server.to_string(),
            username: username.to_string(),
            user_id: t.user_id,
            device: t.device,
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            positions: BTreeMap::new(),
        }
    }

    pub fn tokens(&self) -> Tokens {
        Tokens {
            user_id: self.user_id,
            device: self.device.clone(),
            access_token: self.access_token.clone(),
            expires_in: 0,
            refresh_token: self.refresh_token.clone(),
        }
    }

    /// Takes over tokens the SDK refreshed; true if anything changed.
    pub fn update_tokens(&mut self, t: &Tokens) -> bool {
        let changed = t.access_token != self.access_token || t.refresh_token != self.refresh_token;
        self.access_token = t.access_token.clone();
        self.refresh_token = t.refresh_token.clone();
        changed
    }
}

pub struct ProfileStore {
    dir: PathBuf,
}

impl ProfileStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ProfileStore { dir: dir.into() }
    }

    /// `<platform config dir>/magpie-cli`, e.g. `~/.config/magpie-cli`.
    pub fn default_dir() -> Option<PathBuf> {
        dirs::config_dir().map(|d| d.join("magpie-cli"))
    }

    /// The file of profile `name`. Names are restricted so a name can never
    /// point outside the directory.
    pub fn path(&self, name: &str) -> Result<PathBuf, CliError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !ok {
            return Err(CliError::usage(format!(
                "invalid profile name {name:?}: use letters, digits, '.', '_', '-'"
            )));
        }
        Ok(self.dir.join(format!("{name}.json")))
    }

    pub fn load(&self, name: &str) -> Result<Profile, CliError> {
        let path = self.path(name)?;
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CliError::new(
                    "no_profile",
                    format!(
                        "profile {name:?} not found in {}: run `magpie-cli login` first",
                        self.dir.display()
                    ),
                ));
            }
            Err(e) => return Err(CliError::io(&path, e)),
        };
        serde_json::from_str(&text)
            .map_err(|e| CliError::new("bad_profile", format!("{}: {e}", path.display())))
    }

    /// Writes atomically (temp file + rename) so a crash never leaves half a
    /// profile, and owner-only since the file holds tokens.
    pub fn save(&self, name: &str, profile: &Profile) -> Result<(), CliError> {
        let path = self.path(name)?;
        std::fs::create_dir_all(&self.dir).map_err(|e| CliError::io(&self.dir, e))?;
        let tmp = self.dir.join(format!(".{name}.json.tmp"));
        let mut text = serde_json::to_string_pretty(profile)
            .map_err(|e| CliError::new("internal", e.to_string()))?;
        text.push('\n');
        write_private(&tmp, text.as_bytes()).map_err(|e| CliError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| CliError::io(&path, e))
    }
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Profile {
        Profile {
            server: "http://127.0.0.1:8080".into(),
            username: "alice".into(),
            user_id: UserId(1),
            device: DeviceId::new("laptop").unwrap(),
            access_token: "a1".into(),
            refresh_token: "r1".into(),
            positions: BTreeMap::new(),
        }
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProfileStore::new(dir.path().join("nested"));
        let mut p = sample();
        store.save("default", &p).unwrap();
        assert_eq!(store.load("default").unwrap(), p);
        p.positions.insert(ConvId::direct(UserId(1), UserId(2)), 9);
        store.save("default", &p).unwrap();
        assert_eq!(store.load("default").unwrap(), p);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(store.path("default").unwrap()).unwrap())
                .unwrap();
        for key in [
            "server",
            "username",
            "user_id",
            "device",
            "access_token",
            "refresh_token",
        ] {
            assert!(json.get(key).is_some(), "{key} stored");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path("default").unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn missing_and_invalid_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProfileStore::new(dir.path());
        assert_eq!(store.load("nobody").unwrap_err().code, "no_profile");
        assert_eq!(store.path("../etc").unwrap_err().code, "usage");
        assert_eq!(store.path("").unwrap_err().code, "usage");
        std::fs::write(dir.path().join("broken.json"), "{").unwrap();
        assert_eq!(store.load("broken").unwrap_err().code, "bad_profile");
    }

    #[test]
    fn token_updates_are_detected() {
        let mut p = sample();
        let mut t = p.tokens();
        assert!(!p.update_tokens(&t));
        t.refresh_token = "r2".into();
        assert!(p.update_tokens(&t));
        assert_eq!(p.refresh_token, "r2");
    }
}
