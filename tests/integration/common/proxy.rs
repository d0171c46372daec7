//! A TCP proxy on loopback that a test puts between a worker and Postgres or RabbitMQ, so it can
//! take the service away from that worker alone (the shared servers keep running for every
//! other test) and give it back.
//!
//! Two kinds of outage:
//! - [`Proxy::cut`]: every open connection is closed at once and new ones are closed as soon as
//!   they are accepted, as when a server restarts or a connection is reset.
//! - [`Proxy::blackhole`]: connections stay open but no byte moves either way, as in a network
//!   partition; only timeouts and heartbeats can tell. When it is restored the held bytes flow
//!   again, as when a partition heals.
//!
//! Both return a guard that restores the proxy when dropped, so a panicking test never leaves a
//! service cut.
//!
//! The proxy also notes when each connection it forwards was accepted, so a test can tell when
//! its client connected again after an outage.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Forward,
    /// close everything, accept nothing
    Cut,
    /// hold every connection open without moving a byte
    Blackhole,
}

/// A running proxy; stops (closing every connection) when dropped.
pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: JoinHandle<()>,
    forwarded: Arc<Mutex<Vec<Instant>>>,
}

impl Proxy {
    /// Listens on 127.0.0.1 on a free port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the proxy binds a loopback port");
        let addr = listener.local_addr().expect("the proxy has an address");
        let (mode, _) = watch::channel(Mode::Forward);
        let forwarded = Arc::default();
        let task = tokio::spawn(accept_loop(
            listener,
            upstream,
            mode.clone(),
            Arc::clone(&forwarded),
        ));
        Proxy {
            addr,
            mode,
            task,
            forwarded,
        }
    }

    /// When each connection it forwarded (or is about to forward) was accepted, oldest first;
    /// connections it closed during a cut are not in it.
    pub fn forwarded_at(&self) -> Vec<Instant> {
        let mut forwarded = self.forwarded.lock().expect("proxy lock").clone();
        forwarded.sort();
        forwarded
    }

    /// Where clients connect: `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every connection and refuses new ones until the guard is dropped or
    /// [`Proxy::restore`] is called.
    pub fn cut(&self) -> Outage<'_> {
        self.mode.send_replace(Mode::Cut);
        Outage { proxy: self }
    }

    /// Stops every byte, in both directions, on every connection (open or new) until the guard
    /// is dropped or [`Proxy::restore`] is called.
    pub fn blackhole(&self) -> Outage<'_> {
        self.mode.send_replace(Mode::Blackhole);
        Outage { proxy: self }
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.mode.send_replace(Mode::Forward);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.mode.send_replace(Mode::Cut);
        self.task.abort();
    }
}

/// An outage in progress; dropping it restores the proxy.
#[must_use = "the outage ends when this guard is dropped"]
pub struct Outage<'p> {
    proxy: &'p Proxy,
}

impl Outage<'_> {
    /// Ends the outage now.
    pub fn restore(self) {
        drop(self);
    }
}

impl Drop for Outage<'_> {
    fn drop(&mut self) {
        self.proxy.restore();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mode: watch::Sender<Mode>,
    forwarded: Arc<Mutex<Vec<Instant>>>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let accepted = Instant::now();
        let mut mode = mode.subscribe();
        let forwarded = Arc::clone(&forwarded);
        tokio::spawn(async move {
            // a connection opened during a blackhole waits for it to end before reaching upstream
            loop {
                let current = *mode.borrow_and_update();
                match current {
                    Mode::Forward => break,
                    Mode::Cut => return,
                    Mode::Blackhole => {
                        if mode.changed().await.is_err() {
                            return;
                        }
                    }
                }
            }
            forwarded.lock().expect("proxy lock").push(accepted);
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::select! {
                () = pump(client_read, server_write, mode.clone()) => {}
                () = pump(server_read, client_write, mode.clone()) => {}
                () = wait_for_cut(mode) => {}
            }
            // both halves of both sockets drop here: the connection is closed on both sides
        });
    }
}

/// Resolves when the proxy is cut (or stopped).
async fn wait_for_cut(mut mode: watch::Receiver<Mode>) {
    loop {
        if *mode.borrow_and_update() == Mode::Cut {
            return;
        }
        if mode.changed().await.is_err() {
            return;
        }
    }
}

/// Copies bytes from `from` to `to` while the mode allows; returns at end of stream or error.
async fn pump(from: OwnedReadHalf, to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) {
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        // hold still during a blackhole
        while *mode.borrow_and_update() != Mode::Forward {
            if mode.changed().await.is_err() {
                return;
            }
        }
        let ready = tokio::select! {
            ready = from.readable() => ready,
            changed = mode.changed() => match changed {
                Ok(()) => continue,
                Err(_) => return,
            },
        };
        if ready.is_err() {
            return;
        }
        let read = match from.try_read(&mut buffer) {
            Ok(0) => return,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
        };
        let mut written = 0;
        while written < read {
            if to.writable().await.is_err() {
                return;
            }
            match to.try_write(&buffer[written..read]) {
                Ok(count) => written += count,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            }
        }
    }
}
