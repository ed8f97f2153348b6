//! Closing connections gracefully: when the listener shuts down, and an HTTP/2 connection when
//! it has been idle for its bound. Either way hyper is told to finish: an HTTP/1.1 connection
//! after the request it is serving, an HTTP/2 one with a GOAWAY, so that its client knows which
//! of its requests were taken and may send the others again on a new connection (a plain close
//! would leave a request sent at that moment unanswered and unaccounted for).
//!
//! hyper-util's `GracefulShutdown` does the first only, through its own hold of the connection;
//! [`Closing`] is the same signal (a `watch` channel whose receivers are the connections still
//! open), looked at beside the idle bound.

use std::future::Future;
use std::time::Duration;

use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::watch;

use crate::idle::Idle;

/// The accept loop's side: tells every connection to close and waits until they all have.
pub(crate) struct Closing {
    tx: watch::Sender<()>,
}

/// A connection's side: held until the connection ends, so that [`Closing::close`] waits for it.
pub(crate) struct Watcher {
    rx: watch::Receiver<()>,
}

impl Closing {
    pub(crate) fn new() -> Closing {
        Closing { tx: watch::Sender::new(()) }
    }

    /// A watcher for one more connection.
    pub(crate) fn watcher(&self) -> Watcher {
        Watcher { rx: self.tx.subscribe() }
    }

    /// Tells every watched connection to close, then resolves once all of them have ended.
    pub(crate) fn close(self) -> impl Future<Output = ()> {
        self.tx.send_replace(());
        async move { self.tx.closed().await }
    }
}

/// Serves `conn` until it ends. When the listener closes, or when `idle` has had no request in
/// flight for its bound, hyper is told to finish, and the connection is served until it has;
/// after an idle close, for that bound again at most (a client that leaves a stream open, say by
/// never opening its flow-control window for an answer, is dropped then), and the `bool` says so.
pub(crate) async fn watch<C>(
    conn: C,
    mut watcher: Watcher,
    idle: Option<(&Idle, Duration)>,
) -> (Result<(), C::Error>, bool)
where
    C: GracefulConnection,
{
    tokio::pin!(conn);
    let expired = async {
        match idle {
            Some((idle, bound)) => idle.expired(bound).await,
            None => std::future::pending().await,
        }
    };
    let drain = tokio::select! {
        // The connection first: a request waiting in its socket is taken (and counted) before
        // the idle bound is looked at.
        biased;
        ended = conn.as_mut() => return (ended, false),
        // A closed channel (the accept loop gone) is a close too.
        _ = watcher.rx.changed() => None,
        () = expired => idle.map(|(_, bound)| bound),
    };
    conn.as_mut().graceful_shutdown();
    let ended = match drain {
        None => (conn.await, false),
        Some(bound) => match tokio::time::timeout(bound, conn).await {
            Ok(ended) => (ended, false),
            Err(_) => (Ok(()), true),
        },
    };
    drop(watcher);
    ended
}
