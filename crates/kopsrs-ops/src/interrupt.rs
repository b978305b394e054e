//! Ctrl-C and SIGTERM during an apply or a delete: stop and release the cluster lock (the
//! caller then exits; the CLI with status 130).
//!
//! The in-flight AWS calls are dropped; what they made is tagged (or carries a client token),
//! so the next run adopts it. tokio's `signal` feature would rebuild tokio and every AWS SDK
//! crate with other features; signal-hook (already under tokio's `process`) does the same job
//! from a thread.

use std::future::Future;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Runs `work` until it ends or a signal arrives; `Err(signal)` when interrupted.
pub async fn until_interrupted<T>(work: impl Future<Output = T>) -> Result<T, i32> {
    let (tx, rx) = tokio::sync::oneshot::channel::<i32>();
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM]) else {
        // No signal handling (should not happen): run without it.
        return Ok(work.await);
    };
    let handle = signals.handle();
    let thread = std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let _ = tx.send(signal);
        }
    });
    let result = tokio::select! {
        value = work => Ok(value),
        Ok(signal) = rx => Err(signal),
    };
    handle.close();
    let _ = thread.join();
    result
}
