//! [`ClientRuntime`]: the one multi-thread tokio runtime every whatsapp-rust client runs on.
//!
//! whatsapp-rust expects a multi-thread runtime; actix arbiters are current-thread. So the real
//! connector owns a dedicated runtime and hands the clients [`HandleRuntime`], an implementation
//! of `wacore::runtime::Runtime` over its [`Handle`]: every task, timer and blocking job a
//! client starts lands on that runtime, wherever the call that caused it came from. Session
//! methods called from an arbiter also hop onto it ([`ClientRuntime::run`]), so a client's work
//! never runs on (or stalls) an actor's thread.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};
use whatsapp_rust::async_trait;
use whatsapp_rust::wacore::runtime::AbortHandle;

use crate::whatsapp::ConnectorError;

/// The dedicated runtime. Dropping it stops every client task without blocking the caller
/// (`shutdown_background`), so it may be dropped from async code.
#[derive(Debug)]
pub struct ClientRuntime {
    /// `Some` until dropped.
    runtime: Option<Runtime>,
    /// Its handle (also held by every client through [`HandleRuntime`]).
    handle: Handle,
}

impl ClientRuntime {
    /// Starts a runtime with `threads` workers (0 = one per core, at least 2).
    pub fn start(threads: usize) -> Result<Self, ConnectorError> {
        let threads = if threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .max(2)
        } else {
            threads
        };
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("wa-client")
            .enable_all()
            .build()
            .map_err(|e| ConnectorError::Other(format!("cannot start the client runtime: {e}")))?;
        let handle = runtime.handle().clone();
        Ok(Self {
            runtime: Some(runtime),
            handle,
        })
    }

    /// The handle clients are given.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// What a client's builder takes (`with_runtime`).
    pub fn client_runtime(&self) -> HandleRuntime {
        HandleRuntime {
            handle: self.handle.clone(),
        }
    }

    /// Runs `future` on this runtime and waits for it from any executor (an actix arbiter
    /// included). Fails only when the runtime is shutting down or the task panicked.
    pub async fn run<F, T>(&self, future: F) -> Result<T, ConnectorError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.handle
            .spawn(future)
            .await
            .map_err(|e| ConnectorError::Other(format!("client task failed: {e}")))
    }
}

impl Drop for ClientRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// `wacore::runtime::Runtime` over a stored tokio [`Handle`]: spawns, sleeps and blocking jobs
/// go to that runtime even when called from another one.
#[derive(Debug, Clone)]
pub struct HandleRuntime {
    /// The dedicated runtime's handle.
    handle: Handle,
}

#[async_trait]
impl whatsapp_rust::Runtime for HandleRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send + 'static>>) -> AbortHandle {
        let task = self.handle.spawn(future);
        AbortHandle::new(move || task.abort())
    }

    fn spawn_detached(&self, future: Pin<Box<dyn Future<Output = ()> + Send + 'static>>) {
        drop(self.handle.spawn(future));
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        // A tokio timer binds to the runtime current where it is created: enter ours first.
        let _entered = self.handle.enter();
        Box::pin(tokio::time::sleep(duration))
    }

    fn spawn_blocking(
        &self,
        f: Box<dyn FnOnce() + Send + 'static>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let task = self.handle.spawn_blocking(f);
        Box::pin(async move {
            let _ = task.await;
        })
    }

    fn yield_now(&self) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
        // Multi-thread runtime: other tasks run on other workers.
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatsapp_rust::Runtime as _;

    #[test]
    fn tasks_and_timers_run_on_the_dedicated_runtime_from_a_current_thread_one() {
        let clients = ClientRuntime::start(2).unwrap();
        let runtime = clients.client_runtime();
        let outer = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        outer.block_on(async {
            let (tx, rx) = tokio::sync::oneshot::channel();
            runtime.spawn_detached(Box::pin(async move {
                let name = std::thread::current().name().map(str::to_string);
                let _ = tx.send(name);
            }));
            assert_eq!(rx.await.unwrap().as_deref(), Some("wa-client"));
            runtime.sleep(Duration::from_millis(5)).await;
            let on = clients
                .run(async { std::thread::current().name().map(str::to_string) })
                .await
                .unwrap();
            assert_eq!(on.as_deref(), Some("wa-client"));
        });
        drop(outer);
    }
}
