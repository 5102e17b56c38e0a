//! Credentials: argon2id password hashes, short-lived JWT access tokens,
//! single-use refresh tokens, and one-time connection tickets.
//!
//! Tokens are HS256 only: the algorithm is pinned server-side and never taken
//! from the token; `exp`, `iat` and `sub` are required.

use crate::error::{Result, ServerError};
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation, decode, encode};
use magpie_core::{DeviceId, UserId, now_ms};
use magpie_proto::ErrorCode;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Semaphore;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    dev: String,
    iat: u64,
    exp: u64,
}

/// Who a valid access token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: UserId,
    pub device: DeviceId,
}

pub struct Auth {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
    argon: Argon2<'static>,
    pub access_ttl_secs: u64,
    dummy: std::sync::OnceLock<String>,
    /// Password hashes (and checks) allowed to run at once: each holds the
    /// argon2 memory cost while it runs, so this bounds what a burst of
    /// logins or registrations can take (the rest wait their turn).
    hashing: Semaphore,
    /// The threads hashes run on (one per permit).
    hashers: crate::hashers::Hashers,
    running: AtomicUsize,
    peak: AtomicUsize,
    /// Hashes running or waiting for a permit; beyond `admit` a new one is
    /// refused `busy` at once, so a burst cannot queue without bound.
    admitted: AtomicUsize,
    admit: usize,
}

/// Counts one hash in a counter for as long as it lives.
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    /// Counts one more; also the new count.
    fn enter(counter: &'a AtomicUsize) -> (Counted<'a>, usize) {
        let now = counter.fetch_add(1, Ordering::SeqCst) + 1;
        (Counted(counter), now)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Auth {
    /// `hash_limit`: password hashes run at once (at least one);
    /// `hash_queue`: more that may wait for their turn.
    pub fn new(
        secret: &[u8],
        access_ttl_secs: u64,
        m_kib: u32,
        t: u32,
        hash_limit: usize,
        hash_queue: usize,
    ) -> Result<Auth> {
        let params = Params::new(m_kib, t, 1, None)
            .map_err(|e| ServerError::Internal(format!("argon2 params: {e}")))?;
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Ok(Auth {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
            validation,
            argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            access_ttl_secs,
            dummy: std::sync::OnceLock::new(),
            hashing: Semaphore::new(hash_limit.max(1)),
            hashers: crate::hashers::Hashers::new(hash_limit.max(1)),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            admitted: AtomicUsize::new(0),
            admit: hash_limit.max(1) + hash_queue,
        })
    }

    /// Runs `work` (a password hash or check, CPU- and memory-heavy) on one
    /// of the hashing threads (`hashers.rs`) once a hashing permit is free; `busy` at once when
    /// the permits and the queue behind them are all taken.
    pub async fn hashing<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let (_admitted, n) = Counted::enter(&self.admitted);
        if n > self.admit {
            return Err(ServerError::Busy(
                "too many password checks at once: retry in a second".into(),
            ));
        }
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| ServerError::Unavailable("shutting down".into()))?;
        let (_running, now) = Counted::enter(&self.running);
        self.peak.fetch_max(now, Ordering::SeqCst);
        self.hashers
            .run(work)
            .await
            .ok_or_else(|| ServerError::Internal("password hashing failed".into()))
    }

    /// The most hashes that ever ran at once.
    pub fn peak_hashing(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Hashes a password (CPU-heavy: call from a blocking thread).
    pub fn hash_password(&self, password: &str) -> Result<String> {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        self.argon
            .hash_password_with_salt(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ServerError::Internal(format!("hash: {e}")))
    }

    /// A hash of a random password with our parameters, to verify against
    /// when the username is unknown (CPU-heavy on first use).
    pub fn dummy_hash(&self) -> &str {
        self.dummy
            .get_or_init(|| self.hash_password(&random_token(16)).unwrap_or_default())
    }

    /// Checks a password against a stored hash (CPU-heavy).
    pub fn verify_password(&self, password: &str, hash: &str) -> bool {
        PasswordHash::new(hash)
            .is_ok_and(|h| self.argon.verify_password(password.as_bytes(), &h).is_ok())
    }

    pub fn issue_access(&self, user: UserId, device: &DeviceId) -> Result<String> {
        let now = (now_ms() / 1000) as u64;
        let claims = Claims {
            sub: user.0.to_string(),
            dev: device.to_string(),
            iat: now,
            exp: now + self.access_ttl_secs,
        };
        encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &self.enc,
        )
        .map_err(|e| ServerError::Internal(format!("jwt: {e}")))
    }

    pub fn verify_access(&self, token: &str) -> Result<Principal> {
        let data =
            decode::<Claims>(token, &self.dec, &self.validation).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => ServerError::Unauthenticated(
                    ErrorCode::TokenExpired,
                    "access token expired".into(),
                ),
                _ => ServerError::unauthorized("invalid access token"),
            })?;
        // Real users have positive ids: the system user (0) never holds a
        // token, whatever a holder of the key signs.
        let user = data
            .claims
            .sub
            .parse::<i64>()
            .ok()
            .filter(|u| *u > 0)
            .ok_or_else(|| ServerError::unauthorized("invalid access token"))?;
        let device = DeviceId::new(data.claims.dev)
            .map_err(|_| ServerError::unauthorized("invalid access token"))?;
        Ok(Principal {
            user: UserId(user),
            device,
        })
    }
}

/// A random URL-safe secret of `n` bytes (refresh tokens, tickets).
pub fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// A new refresh-token family: 16 URL-safe characters, no `.`.
pub fn new_family() -> String {
    random_token(12)
}

/// The family a refresh token `{family}.{secret}` belongs to (`""` for a
/// token issued before families existed).
pub fn refresh_family(token: &str) -> &str {
    token.split_once('.').map_or("", |(family, _)| family)
}

/// Refresh tokens are stored by hash so a leaked database holds no usable token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Parses `Authorization: Bearer <token>` (the scheme is case-insensitive,
/// RFC 9110 §11.1).
pub fn bearer(header: Option<&str>) -> Result<&str> {
    header
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ServerError::unauthorized("missing bearer token"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(ttl: u64) -> Auth {
        Auth::new(b"test-secret-test-secret-test-sec", ttl, 64, 1, 2, 100).unwrap()
    }

    /// However many logins come at once, no more hashes run than permits:
    /// the memory a burst takes is bounded.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_hashing_is_bounded() {
        let a = std::sync::Arc::new(auth(60));
        let hashes = (0..12).map(|i| {
            let a2 = a.clone();
            let a = a.clone();
            async move {
                a.hashing(move || {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    a2.hash_password(&format!("password-{i}"))
                })
                .await
            }
        });
        let done = futures_util::future::join_all(hashes).await;
        assert!(done.into_iter().all(|h| h.is_ok_and(|h| h.is_ok())));
        assert_eq!(a.peak_hashing(), 2, "two permits, both used, never more");
    }

    /// Two permits and a queue of three: of twelve hashes asked for at once,
    /// five are admitted and seven refused `busy` without waiting.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_full_hashing_queue_answers_busy() {
        let a = std::sync::Arc::new(
            Auth::new(b"test-secret-test-secret-test-sec", 60, 64, 1, 2, 3).unwrap(),
        );
        let hashes = (0..12).map(|_| {
            let a = a.clone();
            async move {
                a.hashing(|| std::thread::sleep(std::time::Duration::from_millis(50)))
                    .await
            }
        });
        let done = futures_util::future::join_all(hashes).await;
        let busy = done
            .iter()
            .filter(|r| matches!(r, Err(e) if e.code() == ErrorCode::Busy))
            .count();
        assert_eq!((done.len() - busy, busy), (5, 7));
        assert_eq!(a.peak_hashing(), 2);
        // The queue drained: a new hash is admitted again.
        assert!(a.hashing(|| ()).await.is_ok());
    }

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let a = auth(60);
        let dev = DeviceId::new("phone").unwrap();
        let t = a.issue_access(UserId(5), &dev).unwrap();
        assert_eq!(
            a.verify_access(&t).unwrap(),
            Principal {
                user: UserId(5),
                device: dev.clone()
            }
        );
        let other = Auth::new(b"another-secret-another-secret-aa", 60, 64, 1, 1, 0).unwrap();
        assert_eq!(
            other.verify_access(&t).unwrap_err().code(),
            ErrorCode::Unauthorized
        );
        assert_eq!(
            a.verify_access("garbage").unwrap_err().code(),
            ErrorCode::Unauthorized
        );
        for system in [0, -3] {
            let t = a.issue_access(UserId(system), &dev).unwrap();
            assert!(a.verify_access(&t).is_err(), "a token for user {system}");
        }
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for h in ["Bearer abc", "bearer abc", "BEARER  abc "] {
            assert_eq!(bearer(Some(h)).unwrap(), "abc", "{h:?}");
        }
        for h in ["Basic abc", "Bearer", "Bearer   ", "Bearerabc", ""] {
            assert!(bearer(Some(h)).is_err(), "{h:?}");
        }
        assert!(bearer(None).is_err());
    }

    #[test]
    fn expired_tokens_say_so() {
        let a = auth(0);
        let mut a2 = a;
        a2.validation.leeway = 0;
        let t = a2
            .issue_access(UserId(1), &DeviceId::new("d").unwrap())
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(
            a2.verify_access(&t).unwrap_err().code(),
            ErrorCode::TokenExpired
        );
    }

    #[test]
    fn passwords_verify() {
        let a = auth(60);
        let h = a.hash_password("hunter22").unwrap();
        assert!(a.verify_password("hunter22", &h));
        assert!(!a.verify_password("hunter23", &h));
    }
}
