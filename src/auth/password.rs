//! Password hashing with argon2id, off the actix arbiter threads and at most one hash per core
//! at a time (a burst of logins must not starve the fleet of CPU or memory).

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// argon2id memory cost in KiB (OWASP's minimum of 19 MiB).
const MEMORY_KIB: u32 = 19 * 1024;
/// argon2id passes.
const ITERATIONS: u32 = 2;
/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;
/// Longest password accepted (hashing cost does not depend on it, but bodies stay small).
pub const MAX_PASSWORD_LEN: usize = 256;

/// Why hashing or verifying failed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The password breaks the length rules.
    #[error("password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters")]
    Policy,
    /// The hasher itself failed (never for valid input).
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// Hashes and verifies passwords on blocking threads, bounded by a semaphore.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    cores: usize,
    /// A real hash of a random password, verified against when the user does not exist so a
    /// failed login takes the same time either way.
    dummy_hash: Arc<String>,
}

impl PasswordHasher {
    /// A hasher allowing one concurrent hash per available core.
    pub fn new() -> Result<Self, PasswordError> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let dummy_hash = hash_blocking(&super::secret::new_password())?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(cores)),
            cores,
            dummy_hash: Arc::new(dummy_hash),
        })
    }

    /// Hashes a new password after checking the length policy.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        check_policy(password)?;
        let password = password.to_string();
        self.run(move || hash_blocking(&password)).await?
    }

    /// Verifies `password` against `hash`; with `None` (unknown user) verifies against a dummy
    /// hash and returns false, taking the same time.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> bool {
        let password = password.to_string();
        let (hash, known) = match hash {
            Some(h) => (h.to_string(), true),
            None => (self.dummy_hash.as_ref().clone(), false),
        };
        let matched = self
            .run(move || {
                PasswordHash::new(&hash)
                    .map(|parsed| {
                        argon2()
                            .verify_password(password.as_bytes(), &parsed)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await
            .unwrap_or(false);
        matched && known
    }

    /// Runs CPU-heavy work on the blocking pool once a permit is free. The permit moves into
    /// the blocking task: a caller that gives up waiting does not free it while the hash runs.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| PasswordError::Hashing(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| PasswordError::Hashing(e.to_string()))
    }

    /// Hashing permits free right now (tests check a dropped caller keeps its permit).
    pub fn free_permits(&self) -> usize {
        self.permits.available_permits()
    }

    /// Takes every hashing permit until the returned guard is dropped; hashes wait meanwhile
    /// (tests use it to hold a login half-way).
    pub async fn hold_all(&self) -> Result<OwnedSemaphorePermit, PasswordError> {
        let all = u32::try_from(self.cores).unwrap_or(u32::MAX);
        self.permits
            .clone()
            .acquire_many_owned(all)
            .await
            .map_err(|e| PasswordError::Hashing(e.to_string()))
    }
}

/// The length policy.
pub fn check_policy(password: &str) -> Result<(), PasswordError> {
    let len = password.chars().count();
    if (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&len) {
        Ok(())
    } else {
        Err(PasswordError::Policy)
    }
}

/// argon2id with the parameters above.
fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes on the current thread (callers are on a blocking thread).
fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    let mut salt_bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt_bytes);
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_use_argon2id_with_19_mib() {
        let hasher = PasswordHasher::new().unwrap();
        let hash = hasher.hash("correct horse battery").await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(hasher.verify("correct horse battery", Some(&hash)).await);
        assert!(!hasher.verify("wrong horse battery", Some(&hash)).await);
        assert!(!hasher.verify("correct horse battery", None).await);
        assert!(matches!(
            hasher.hash("short").await,
            Err(PasswordError::Policy)
        ));
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_keeps_the_permit_until_the_hash_ends() {
        let hasher = PasswordHasher::new().unwrap();
        let all = hasher.free_permits();
        let running = hasher.clone();
        let task = tokio::spawn(async move { running.verify("some password", None).await });
        while hasher.free_permits() == all {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        task.abort();
        assert!(task.await.is_err_and(|e| e.is_cancelled()));
        assert_eq!(hasher.free_permits(), all - 1, "the hash still runs");
        while hasher.free_permits() < all {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}
