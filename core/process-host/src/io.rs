//! The runtime that plugin-process I/O runs on.
//!
//! Pipes to plugin processes belong to one small runtime on a thread of its own, whatever
//! runtime a caller uses. Calls from any runtime (each test has its own) reach a process
//! through channels, and the compiler's synchronous `validate` can wait for an answer
//! without blocking the runtime that would have to deliver it.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::runtime::Handle;

fn handle() -> &'static Handle {
    static IO: OnceLock<Handle> = OnceLock::new();
    IO.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("plugin-io".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => {
                        let _ = tx.send(Some(rt.handle().clone()));
                        rt.block_on(std::future::pending::<()>());
                    }
                    Err(_) => {
                        let _ = tx.send(None);
                    }
                }
            });
        match spawned.ok().and_then(|_| rx.recv().ok().flatten()) {
            Some(h) => h,
            // No thread or runtime could be made (the process is out of resources): share
            // whatever runtime the first caller runs on.
            None => Handle::current(),
        }
    })
}

/// Runs `fut` on the I/O runtime and awaits it from any runtime.
pub(crate) async fn run<T: Send + 'static>(
    fut: impl Future<Output = T> + Send + 'static,
) -> Option<T> {
    handle().spawn(fut).await.ok()
}

/// Runs `fut` on the I/O runtime and blocks this (non-I/O) thread until it ends or
/// `limit` passes.
pub(crate) fn block_on<T: Send + 'static>(
    fut: impl Future<Output = T> + Send + 'static,
    limit: Duration,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    handle().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv_timeout(limit).ok()
}
