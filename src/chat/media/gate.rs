//! How many pictures are decoded at once: a semaphore whose permit travels with the decode onto
//! its blocking thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

/// Bounds how many pictures are decoded at once, each on a blocking thread: the permit goes
/// with the work onto its thread, so a client that hangs up frees it only when the decode ends.
pub struct DecodeGate {
    permits: Arc<Semaphore>,
    /// Callers waiting for a permit.
    queued: AtomicUsize,
}

impl DecodeGate {
    /// A gate letting `permits` (at least 1) decodes run at once.
    pub fn new(permits: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
            queued: AtomicUsize::new(0),
        }
    }

    /// The process's gate: one decode per core.
    pub fn global() -> &'static DecodeGate {
        static GATE: OnceLock<DecodeGate> = OnceLock::new();
        GATE.get_or_init(|| {
            DecodeGate::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
        })
    }

    /// Runs `work` on a blocking thread once a permit is free.
    pub async fn run<T: Send + 'static>(
        &self,
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
        // The semaphore is never closed, so this waits for a permit and never fails.
        let permit = self.permits.clone().acquire_owned().await;
        drop(waiting);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
    }

    /// Callers waiting for a permit now.
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
        let gate = Arc::new(DecodeGate::new(2));
        let active = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let open = Arc::new((Mutex::new(false), Condvar::new()));
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (gate, active, peak, open) =
                    (gate.clone(), active.clone(), peak.clone(), open.clone());
                tokio::spawn(async move {
                    gate.run(move || {
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
}
