//! The login guard: failed logins are counted per account and per
//! address in the fast state (so every node sees every failure), over a
//! fixed window of `guard.login.window_secs`. From `captcha_after`
//! failures on, a login must carry a solved captcha; from
//! `lockout_after` on, logins are refused (`locked_out`) until the window
//! ends — whatever the password, so a correct guess late in an attack
//! tells the attacker nothing.
//!
//! Allow-listed addresses and trusted proxies are not counted per address
//! (`ip` is `None`): behind a gateway that is not a trusted proxy, every
//! client shares its address, and ten failures anywhere would lock
//! everyone out. Their accounts are still counted.
//!
//! A success clears the account's count, not the address's: one valid
//! account must not let an address reset its own count between guesses
//! at others. Locking an account out is a denial of service an attacker
//! can cause on purpose; the captcha comes first to make that costly,
//! and the window bounds it (docs/edge.md).
//!
//! Captchas: an image from the `captcha` crate, its answer kept once in
//! the fast state for `captcha_ttl_secs` under a random id; answering
//! takes it (right or wrong), so each one is good for one try.

use super::config::LoginGuardConfig;
use crate::error::{Result, ServerError};
use base64::Engine;
use magpie_proto::ErrorCode;
use magpie_proto::http::{CaptchaAnswer, CaptchaChallenge};
use magpie_store::State;
use sha2::{Digest, Sha256};
use std::net::IpAddr;

pub struct LoginGuard {
    state: State,
    cfg: LoginGuardConfig,
}

/// The counter key of an account: a digest, as user names are free text.
fn account_key(username: &str) -> String {
    let d = Sha256::digest(username.trim().to_lowercase().as_bytes());
    format!("login:acct:{}", hex::encode(&d[..12]))
}

fn ip_key(ip: IpAddr) -> String {
    format!("login:ip:{ip}")
}

pub fn captcha_key(id: &str) -> String {
    format!("captcha:{id}")
}

impl LoginGuard {
    pub fn new(state: State, cfg: LoginGuardConfig) -> LoginGuard {
        LoginGuard { state, cfg }
    }

    /// Before checking the password: refuses a locked-out login, and one
    /// that needs a captcha and has no right answer.
    pub async fn before(
        &self,
        username: &str,
        ip: Option<IpAddr>,
        captcha: Option<&CaptchaAnswer>,
    ) -> Result<()> {
        let acct = self.state.guard_count(&account_key(username)).await?;
        let addr = match ip {
            Some(ip) => self.state.guard_count(&ip_key(ip)).await?,
            None => 0,
        };
        let fails = acct.max(addr);
        if self.cfg.lockout_after > 0 && fails >= self.cfg.lockout_after {
            let ms = self.cfg.window_secs * 1000;
            return Err(ServerError::Limited(
                ErrorCode::LockedOut,
                ms,
                format!(
                    "too many failed logins: locked for up to {} s",
                    self.cfg.window_secs
                ),
            ));
        }
        if self.cfg.captcha_after == 0 || fails < self.cfg.captcha_after {
            return Ok(());
        }
        let Some(c) = captcha else {
            return Err(captcha_required(
                "this login needs a captcha: GET /v1/auth/captcha",
            ));
        };
        let expected = if c.id.is_empty() || c.id.len() > 64 {
            None
        } else {
            self.state.guard_take(&captcha_key(&c.id)).await?
        };
        match expected {
            Some(e) if e.eq_ignore_ascii_case(c.answer.trim()) => Ok(()),
            _ => Err(captcha_required("wrong or expired captcha: get a new one")),
        }
    }

    /// After a wrong password.
    pub async fn failed(&self, username: &str, ip: Option<IpAddr>) -> Result<()> {
        let ttl = self.cfg.window_secs.max(1) * 1000;
        self.state.guard_hit(&account_key(username), ttl).await?;
        if let Some(ip) = ip {
            self.state.guard_hit(&ip_key(ip), ttl).await?;
        }
        Ok(())
    }

    /// After a correct one.
    pub async fn succeeded(&self, username: &str) -> Result<()> {
        self.state.guard_reset(&account_key(username)).await?;
        Ok(())
    }

    /// A new captcha: the image is drawn on a blocking thread.
    pub async fn challenge(&self) -> Result<CaptchaChallenge> {
        let (answer, png) = tokio::task::spawn_blocking(draw)
            .await
            .map_err(|e| ServerError::Internal(format!("captcha: {e}")))??;
        let id = hex::encode(rand::random::<[u8; 16]>());
        let ttl = self.cfg.captcha_ttl_secs.max(1);
        self.state
            .guard_swap(&captcha_key(&id), &answer, ttl * 1000)
            .await?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(png);
        Ok(CaptchaChallenge {
            id,
            image: format!("data:image/png;base64,{b64}"),
            expires_in: ttl,
        })
    }
}

fn captcha_required(msg: &str) -> ServerError {
    ServerError::Unauthenticated(ErrorCode::CaptchaRequired, msg.into())
}

/// Five characters, noise and a wave, 220×110.
fn draw() -> Result<(String, Vec<u8>)> {
    use captcha::filters::{Noise, Wave};
    let mut c = captcha::Captcha::new();
    c.add_chars(5)
        .apply_filter(Noise::new(0.3))
        .apply_filter(Wave::new(2.0, 12.0).horizontal())
        .view(220, 110);
    let png = c
        .as_png()
        .ok_or_else(|| ServerError::Internal("captcha: the image was not encoded".into()))?;
    Ok((c.chars_as_string(), png))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_keys_ignore_case_and_hide_the_name() {
        assert_eq!(account_key("Alice"), account_key(" alice "));
        assert!(!account_key("alice").contains("alice"));
        assert!(!account_key("a{b}").contains('{'));
    }

    #[test]
    fn a_captcha_is_a_png_with_five_characters() {
        let (answer, png) = draw().expect("draw");
        assert_eq!(answer.chars().count(), 5);
        assert_eq!(&png[..4], b"\x89PNG");
    }
}
