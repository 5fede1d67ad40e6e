//! Loopback ports.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is released before it is returned, so another process could take it first; the
/// fixtures retry start-up on a new port when that happens.
///
/// # Errors
///
/// When no loopback socket can be bound.
pub fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// Waits until `addr` accepts a TCP connection, polling every 20 ms up to `timeout`.
///
/// # Errors
///
/// `TimedOut` when nothing accepted within `timeout`.
pub fn wait_for_tcp(addr: SocketAddr, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(_) => return Ok(()),
            Err(error) if Instant::now() >= deadline => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{addr} did not accept connections within {timeout:?}: {error}"),
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Runs `start` with a free loopback port, retrying on a new port up to five times: a free
/// port can be taken by another process before the server binds it.
///
/// # Errors
///
/// The last start-up error when every attempt failed.
pub(crate) fn start_on_a_free_port(mut start: impl FnMut(u16) -> io::Result<()>) -> io::Result<()> {
    let mut last_error = io::Error::other("no start-up attempt was made");
    for _ in 0..5 {
        match start(free_port()?) {
            Ok(()) => return Ok(()),
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}
