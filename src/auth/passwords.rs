//! Password hashing: Argon2id PHC strings (API.md §3.1) on a fixed set of hashing threads with a
//! bounded queue.
//!
//! Each hash or verify costs ~20 ms of CPU and ~19 MiB of memory. Running them on async workers
//! would stall every other request. Running them on the blocking pool made memory unbounded:
//! every hash allocated and freed its 19 MiB there, glibc kept the freed blocks in per-thread
//! arenas, and a 20 s flood of bogus logins left the process at 3.4 GB, never returned. So
//! [`Hasher`] owns `[auth].max_concurrent_hashes` threads, each reusing one Argon2 memory
//! buffer while it has work, and a queue of at most `[auth].max_pending_hashes` jobs; a job
//! beyond that is refused at once ([`PasswordError::Busy`], a 503 with `Retry-After`) instead
//! of waiting and holding its request's memory. A thread idle for [`IDLE_RELEASE`] gives its
//! buffer back to the OS (see [`new_buffer`]), so a flood leaves no memory behind.

use std::alloc::System;
use std::sync::OnceLock;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::oneshot;

/// What a refused caller is told to wait, in seconds: the queue drains in well under that.
pub const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// A hashing thread with no job for this long frees its buffer.
pub const IDLE_RELEASE: Duration = Duration::from_secs(5);

/// Capacity of a hashing buffer: above glibc's largest dynamic mmap threshold (32 MiB on 64-bit),
/// so the allocation is always its own mapping and freeing it unmaps it. A smaller buffer, once
/// freed, raises that threshold above its size, and later ones land in malloc arenas that keep
/// them. Only the blocks Argon2 touches (19 MiB by default) become resident.
const BUFFER_CAPACITY_BLOCKS: usize = 33 * 1024;

/// A hashing buffer, from the system allocator (glibc's malloc) whatever the global one is, so
/// the mapping rule above holds.
type Buffer = allocator_api2::vec::Vec<Block, System>;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The queue is full: the caller should answer 503 with `Retry-After`.
    #[error("too many password checks in progress")]
    Busy,
    #[error("password hashing stopped")]
    Stopped,
}

enum Job {
    Hash {
        password: String,
        reply: oneshot::Sender<Result<String, PasswordError>>,
    },
    /// `phc: None`: verify against the decoy (an unknown email), so it costs the same.
    Verify {
        password: String,
        phc: Option<String>,
        reply: oneshot::Sender<bool>,
    },
}

/// The hashing threads and their queue. Dropping it stops the threads once the queue drains.
pub struct Hasher {
    jobs: Sender<Job>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher")
    }
}

impl Hasher {
    /// `threads` hashes run at once (at least one); at most `pending` more wait.
    pub fn new(threads: usize, pending: usize) -> Hasher {
        let (jobs, queue) = bounded::<Job>(pending);
        for index in 0..threads.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new().name(format!("ares-hash-{index}")).spawn(move || worker(&queue));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Hasher { jobs }
    }

    fn submit(&self, job: Job) -> Result<(), PasswordError> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => PasswordError::Busy,
            TrySendError::Disconnected(_) => PasswordError::Stopped,
        })
    }

    /// Argon2id v19, m=19456 KiB, t=2, p=1, random 16-byte salt: the reference's parameters.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Hash { password, reply })?;
        answer.await.map_err(|_| PasswordError::Stopped)?
    }

    /// Verify with the parameters embedded in `phc` (imported hashes keep working whatever our
    /// defaults); `None` (an unknown email) verifies against a decoy hash, so that a failed login
    /// takes the same time whether or not the account exists. An unparseable stored hash is
    /// simply a failed verification; a full queue is [`PasswordError::Busy`].
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, PasswordError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Verify { password, phc, reply })?;
        answer.await.map_err(|_| PasswordError::Stopped)
    }
}

/// One hashing thread: takes jobs until the [`Hasher`] is dropped, hashing in its own buffer,
/// which it frees after [`IDLE_RELEASE`] without work.
fn worker(queue: &Receiver<Job>) {
    let mut memory = Buffer::new_in(System);
    loop {
        let job = match queue.recv_timeout(IDLE_RELEASE) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                memory = Buffer::new_in(System);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // A caller that went away (client disconnected) does not need its hash computed.
        match job {
            Job::Hash { reply, .. } if reply.is_closed() => {}
            Job::Verify { reply, .. } if reply.is_closed() => {}
            Job::Hash { password, reply } => {
                let _ = reply.send(hash_with(&mut memory, &password));
            }
            Job::Verify { password, phc, reply } => {
                let verified = match &phc {
                    Some(phc) => verify_with(&mut memory, &password, phc),
                    None => {
                        // The same work as a real check; never a match.
                        let decoy = decoy_hash(&mut memory);
                        let _ = verify_with(&mut memory, &password, decoy);
                        false
                    }
                };
                let _ = reply.send(verified);
            }
        }
    }
}

/// A zeroed buffer of `blocks` blocks, allocated as its own mapping (see
/// [`BUFFER_CAPACITY_BLOCKS`]) so that dropping it returns the memory to the OS.
fn new_buffer(blocks: usize) -> Buffer {
    let mut buffer = Buffer::with_capacity_in(blocks.max(BUFFER_CAPACITY_BLOCKS), System);
    buffer.resize(blocks, Block::new());
    buffer
}

/// The buffer for `params`: the thread's own one, allocated on first use at the default size
/// and reused. A hash with larger parameters (an imported one) gets a buffer of its own that is
/// freed after it, so the kept memory stays at one default-sized buffer per thread.
fn compute(
    memory: &mut Buffer,
    argon2: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let needed = params.block_count();
    if needed > Params::DEFAULT.block_count() {
        return argon2.hash_password_into_with_memory(password, salt, out, new_buffer(needed).as_mut_slice());
    }
    if memory.is_empty() {
        *memory = new_buffer(Params::DEFAULT.block_count());
    }
    let blocks = memory.get_mut(..needed).ok_or(argon2::Error::MemoryTooLittle)?;
    argon2.hash_password_into_with_memory(password, salt, out, blocks)
}

fn hash_with(memory: &mut Buffer, password: &str) -> Result<String, PasswordError> {
    let failed = |e: &dyn std::fmt::Display| PasswordError::Hash(e.to_string());
    let params = Params::DEFAULT;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt = Salt::generate();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    compute(memory, &argon2, &params, password.as_bytes(), &salt, &mut out).map_err(|e| failed(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
        salt: Some(salt),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(phc.to_string())
}

/// [`argon2::PasswordVerifier`]'s algorithm, with the thread's buffer: recompute with the
/// stored algorithm, version and parameters, compare in constant time ([`Output`]'s `==`).
fn verify_with(memory: &mut Buffer, password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else { return false };
    let version = match parsed.version {
        Some(v) => match Version::try_from(v) {
            Ok(version) => version,
            Err(_) => return false,
        },
        None => Version::default(),
    };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    if compute(memory, &argon2, &params, password.as_bytes(), salt, &mut out).is_err() {
        return false;
    }
    Output::new(&out).is_ok_and(|computed| computed == *expected)
}

/// A valid hash of a random password, verified against when the email is unknown. Made on a
/// hashing thread, with its buffer, the first time it is needed.
fn decoy_hash(memory: &mut Buffer) -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let random = uuid::Uuid::new_v4().to_string();
        hash_with(memory, &random).unwrap_or_else(|_| {
            "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordHasher as _;

    #[test]
    fn verifies_its_own_hashes_and_reference_shaped_ones() {
        let mut memory = Buffer::new_in(System);
        let phc = hash_with(&mut memory, "correcthorsebatterystaple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_with(&mut memory, "correcthorsebatterystaple", &phc));
        assert!(!verify_with(&mut memory, "wrong", &phc));
        assert!(!verify_with(&mut memory, "x", "not a phc string"));
        // The crate's own hasher and ours agree both ways.
        let theirs = Argon2::default().hash_password(b"pw-from-the-crate").unwrap().to_string();
        assert!(verify_with(&mut memory, "pw-from-the-crate", &theirs));
        assert!(!verify_with(&mut memory, "pw-from-the-crat", &theirs));
        // Parameters are read from the string: a cheaper hash still verifies.
        let cheap = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8, 1, 1, None).unwrap())
            .hash_password(b"pw-with-other-params")
            .unwrap()
            .to_string();
        assert!(cheap.contains("m=8,t=1,p=1"), "{cheap}");
        assert!(verify_with(&mut memory, "pw-with-other-params", &cheap));
        // And a costlier one, in a buffer of its own; the kept buffer stays default-sized.
        let costly = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(32_768, 1, 1, None).unwrap())
            .hash_password(b"pw-with-more-memory")
            .unwrap()
            .to_string();
        assert!(verify_with(&mut memory, "pw-with-more-memory", &costly));
        assert_eq!(memory.len(), Params::DEFAULT.block_count());
        let decoy = decoy_hash(&mut memory);
        assert!(!verify_with(&mut memory, "anything", decoy));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        // One thread and one waiting place: of three hashes asked for at the same instant, at
        // most two are taken and the rest refused without waiting.
        let hasher = Hasher::new(1, 1);
        let (a, b, c) = tokio::join!(
            hasher.hash("first-password".into()),
            hasher.hash("second-password".into()),
            hasher.hash("third-password".into())
        );
        let results = [a, b, c];
        let busy = results.iter().filter(|r| matches!(r, Err(PasswordError::Busy))).count();
        let done: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert!(busy >= 1, "{results:?}");
        assert!(!done.is_empty(), "{results:?}");
        assert!(hasher.verify("first-password".into(), Some(done[0].clone())).await.is_ok());
        let phc = hasher.hash("fourth-password".into()).await.unwrap();
        assert!(hasher.verify("fourth-password".into(), Some(phc.clone())).await.unwrap());
        assert!(!hasher.verify("wrong-password".into(), Some(phc)).await.unwrap());
        assert!(!hasher.verify("fourth-password".into(), None).await.unwrap());
    }
}
