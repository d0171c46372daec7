//! How a long-running command learns that it must stop: SIGTERM or SIGINT (Ctrl-C), set up once
//! here for every command that runs until told to stop (`worker`, `api`, `review-agent`). What a
//! command does on stop is its own business; nothing here but the signals.

use tokio_util::sync::CancellationToken;

/// Resolves on SIGTERM or SIGINT.
pub async fn signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the process");
                interrupt.await.ok();
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    interrupt.await.ok();
}

/// A token cancelled on SIGTERM or SIGINT. Must be called within a Tokio runtime.
pub fn on_signal() -> CancellationToken {
    let stop = CancellationToken::new();
    let cancel = stop.clone();
    tokio::spawn(async move {
        signal().await;
        cancel.cancel();
    });
    stop
}
