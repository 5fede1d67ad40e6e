//! Built-in TCP kinds: [`ManagedTcpStream`] ([`TCP_SOCKET_KIND`], shut down on close) and
//! [`ManagedTcpListener`] ([`TCP_LISTENER_KIND`], never a leak unless configured otherwise).

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::Location;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

use crate::config::{KindConfig, LeakThreshold};
use crate::error::Error;
use crate::managed::{Managed, ManagedResource};
use crate::tracker::ResourceTracker;

/// Kind name of TCP connections.
pub const TCP_SOCKET_KIND: &str = "tcp_socket";

/// Kind name of TCP listeners. Unless configured otherwise, [`LeakThreshold::Never`]: a
/// listener is meant to live as long as the server.
pub const TCP_LISTENER_KIND: &str = "tcp_listener";

/// A tracked tokio TCP connection: `close().await` shuts down the write half, so the peer
/// reads end-of-file, then releases the socket.
pub type ManagedTcpStream = Managed<TcpStream>;

/// A tracked tokio TCP listener.
pub type ManagedTcpListener = Managed<TcpListener>;

impl ManagedResource for TcpStream {
    type Error = io::Error;

    async fn close(mut self) -> Result<(), io::Error> {
        self.shutdown().await
    }
}

impl ManagedResource for TcpListener {
    type Error = io::Error;

    async fn close(self) -> Result<(), io::Error> {
        // Dropping the listener closes it; there is nothing to flush.
        drop(self);
        Ok(())
    }
}

fn stream_label(stream: &TcpStream) -> String {
    match (stream.local_addr(), stream.peer_addr()) {
        (Ok(local), Ok(peer)) => format!("{local} -> {peer}"),
        (_, Ok(peer)) => format!("-> {peer}"),
        _ => String::from("tcp stream"),
    }
}

impl Managed<TcpStream> {
    /// Connects to `addr` and tracks the connection as a [`TCP_SOCKET_KIND`] acquired at the
    /// caller's line (a plain `#[track_caller]` function returning a future).
    #[track_caller]
    pub fn connect<A>(
        tracker: &ResourceTracker,
        addr: A,
    ) -> impl Future<Output = Result<Self, Error>> + Send + 'static
    where
        A: ToSocketAddrs + fmt::Display + Send + 'static,
    {
        let location = Location::caller();
        let tracker = tracker.clone();
        let addr_text = addr.to_string();
        async move {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    let guard = tracker.track_at(TCP_SOCKET_KIND, stream_label(&stream), location);
                    Ok(Managed::with_guard(stream, guard))
                }
                Err(source) => Err(Error::Connect {
                    addr: addr_text,
                    source,
                }),
            }
        }
    }
}

impl Managed<TcpListener> {
    /// Binds a listener to `addr` and tracks it as a [`TCP_LISTENER_KIND`] acquired at the
    /// caller's line.
    #[track_caller]
    pub fn bind<A>(
        tracker: &ResourceTracker,
        addr: A,
    ) -> impl Future<Output = Result<Self, Error>> + Send + 'static
    where
        A: ToSocketAddrs + fmt::Display + Send + 'static,
    {
        let location = Location::caller();
        let tracker = tracker.clone();
        let addr_text = addr.to_string();
        async move {
            tracker.configure_kind_if_unset(
                TCP_LISTENER_KIND,
                KindConfig {
                    leak_threshold: LeakThreshold::Never,
                    ..KindConfig::default()
                },
            );
            match TcpListener::bind(addr).await {
                Ok(listener) => {
                    let label = listener
                        .local_addr()
                        .map_or_else(|_| addr_text.clone(), |local| local.to_string());
                    let guard = tracker.track_at(TCP_LISTENER_KIND, label, location);
                    Ok(Managed::with_guard(listener, guard))
                }
                Err(source) => Err(Error::Bind {
                    addr: addr_text,
                    source,
                }),
            }
        }
    }

    /// Accepts a connection and tracks it as a [`TCP_SOCKET_KIND`] acquired at the caller's
    /// line, in `tracker`. The listener does not remember which tracker it was bound with:
    /// pass the same one to keep listener and connections in one place, or another to count
    /// the connections elsewhere.
    #[track_caller]
    pub fn accept(
        &self,
        tracker: &ResourceTracker,
    ) -> impl Future<Output = io::Result<(ManagedTcpStream, SocketAddr)>> + Send + '_ {
        let location = Location::caller();
        let tracker = tracker.clone();
        async move {
            let (stream, peer) = TcpListener::accept(self).await?;
            let guard = tracker.track_at(TCP_SOCKET_KIND, stream_label(&stream), location);
            Ok((Managed::with_guard(stream, guard), peer))
        }
    }
}
