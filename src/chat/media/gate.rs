//! How much picture work runs at once. Two budgets, each a semaphore:
//! - [`DecodeGate`]: decodes run on blocking threads, at most one per core, and together within
//!   a memory budget weighed from each picture's header (a picture near the decode limit runs
//!   alone; small ones share). The permits travel with the work onto its thread, so a client
//!   that hangs up frees them only when the decode ends.
//! - [`ByteBudget`] for request bodies ([`upload_budget`]): an upload reserves its declared size
//!   (or the upload limit, when it declares none) before its body is read, so parallel uploads
//!   cannot add up to more than the budget while they wait for a decode.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Decoded bytes the process's decodes may hold together: one picture at the decode limit
/// (64 MiB) plus its working buffers and result.
pub const DECODE_BUDGET_BYTES: u64 = 80 * 1024 * 1024;
/// Request bodies of pictures held at once: one at the upload limit (32 MiB) with its form, or
/// several phone photos (2–5 MB each); two near the limit wait for each other.
pub const UPLOAD_BUDGET_BYTES: u64 = 36 * 1024 * 1024;

/// A memory budget in bytes (counted in KiB): reservations wait until enough is free. A
/// reservation larger than the whole budget is cut to the budget, so it runs alone.
#[derive(Debug)]
pub struct ByteBudget {
    kib: Arc<Semaphore>,
    total_kib: u32,
}

/// Bytes reserved from a [`ByteBudget`]; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    /// `None` only if the semaphore were closed, which it never is.
    _permit: Option<OwnedSemaphorePermit>,
}

impl ByteBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> Self {
        let total_kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .max(1);
        Self {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Waits until `bytes` are free and reserves them.
    pub async fn reserve(&self, bytes: u64) -> Reservation {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib);
        Reservation {
            _permit: self.kib.clone().acquire_many_owned(kib).await.ok(),
        }
    }

    /// Bytes free right now.
    pub fn free_bytes(&self) -> u64 {
        self.kib.available_permits() as u64 * 1024
    }
}

/// The budget every picture upload's body is read within ([`UPLOAD_BUDGET_BYTES`]).
pub fn upload_budget() -> &'static ByteBudget {
    static BUDGET: OnceLock<ByteBudget> = OnceLock::new();
    BUDGET.get_or_init(|| ByteBudget::new(UPLOAD_BUDGET_BYTES))
}

/// Bounds the decodes that run at once: by count (threads) and by the memory they need.
pub struct DecodeGate {
    slots: Arc<Semaphore>,
    memory: ByteBudget,
    /// Callers waiting for a slot or memory.
    queued: AtomicUsize,
}

impl DecodeGate {
    /// A gate letting `slots` (at least 1) decodes run at once within `memory_bytes`.
    pub fn new(slots: usize, memory_bytes: u64) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            memory: ByteBudget::new(memory_bytes),
            queued: AtomicUsize::new(0),
        }
    }

    /// The process's gate: one decode per core, within [`DECODE_BUDGET_BYTES`].
    pub fn global() -> &'static DecodeGate {
        static GATE: OnceLock<DecodeGate> = OnceLock::new();
        GATE.get_or_init(|| {
            DecodeGate::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
                DECODE_BUDGET_BYTES,
            )
        })
    }

    /// Runs `work`, which needs about `bytes` of memory, on a blocking thread once a slot and
    /// the memory are free.
    pub async fn run<T: Send + 'static>(
        &self,
        bytes: u64,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        /// Counts a waiting caller, also one that stops waiting.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.queued.fetch_add(1, Ordering::SeqCst);
        let waiting = Waiting(&self.queued);
        let memory = self.memory.reserve(bytes).await;
        // The semaphore is never closed, so this waits for a slot and never fails.
        let slot = self.slots.clone().acquire_owned().await;
        drop(waiting);
        tokio::task::spawn_blocking(move || {
            let _held = (memory, slot);
            work()
        })
        .await
    }

    /// Runs `look`, a quick look at a picture (its header), on a blocking thread once a slot is
    /// free, needing no memory budget: header reads take no more blocking threads at once than
    /// decodes do.
    pub async fn look<T: Send + 'static>(
        &self,
        look: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        let slot = self.slots.clone().acquire_owned().await;
        tokio::task::spawn_blocking(move || {
            let _held = slot;
            look()
        })
        .await
    }

    /// Callers waiting for a slot or memory now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_gate_bounds_how_many_decodes_run_at_once() {
        use std::sync::{Condvar, Mutex};
        let gate = Arc::new(DecodeGate::new(2, 1 << 30));
        let active = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let open = Arc::new((Mutex::new(false), Condvar::new()));
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (gate, active, peak, open) =
                    (gate.clone(), active.clone(), peak.clone(), open.clone());
                tokio::spawn(async move {
                    gate.run(1024, move || {
                        let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        let (lock, opened) = &*open;
                        let mut is_open = lock.lock().unwrap();
                        while !*is_open {
                            is_open = opened.wait(is_open).unwrap();
                        }
                        active.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                    .unwrap()
                })
            })
            .collect();
        // Two decodes hold the permits and four wait for one; none can finish before `open`.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !(active.load(Ordering::SeqCst) == 2 && gate.queued() == 4) {
            assert!(
                std::time::Instant::now() < deadline,
                "active {}, queued {}",
                active.load(Ordering::SeqCst),
                gate.queued()
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        *open.0.lock().unwrap() = true;
        open.1.notify_all();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(gate.queued(), 0);
    }

    #[tokio::test]
    async fn pictures_share_the_memory_budget_by_their_size() {
        let gate = Arc::new(DecodeGate::new(4, 100 * 1024));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        // A picture needing 80 KiB holds most of the 100 KiB budget while it runs...
        let big = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.run(80 * 1024, move || rx.recv().ok()).await })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while gate.memory.free_bytes() != 20 * 1024 {
            assert!(
                std::time::Instant::now() < deadline,
                "the big picture never started"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // ...so a second one of 40 KiB waits, although a slot is free, while one of 16 KiB runs.
        let second = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.run(40 * 1024, || ()).await })
        };
        gate.run(16 * 1024, || ()).await.unwrap();
        while gate.queued() != 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the second picture is not waiting"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(!second.is_finished());
        tx.send(()).unwrap();
        big.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(gate.memory.free_bytes(), 100 * 1024);
    }

    #[tokio::test]
    async fn a_reservation_above_the_budget_runs_alone() {
        let budget = ByteBudget::new(10 * 1024);
        let whole = budget.reserve(1 << 40).await;
        assert_eq!(budget.free_bytes(), 0);
        drop(whole);
        assert_eq!(budget.free_bytes(), 10 * 1024);
    }
}
