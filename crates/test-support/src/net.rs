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

/// A loopback port held by a bound socket that never listens: every connect to it is refused
/// (`ECONNREFUSED`), and no other process can take the port while the value lives. For tests
/// of a backend that is down.
#[derive(Debug)]
pub struct RefusedPort {
    _socket: std::os::fd::OwnedFd,
    port: u16,
}

impl RefusedPort {
    /// Binds a TCP socket to a free port on 127.0.0.1 without listening.
    ///
    /// # Errors
    ///
    /// When no socket can be made or bound.
    pub fn reserve() -> io::Result<Self> {
        use nix::sys::socket::{
            bind, getsockname, socket, AddressFamily, SockFlag, SockType, SockaddrIn,
        };
        let socket = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(io::Error::from)?;
        let any_port = SockaddrIn::new(127, 0, 0, 1, 0);
        bind(std::os::fd::AsRawFd::as_raw_fd(&socket), &any_port).map_err(io::Error::from)?;
        let bound: SockaddrIn =
            getsockname(std::os::fd::AsRawFd::as_raw_fd(&socket)).map_err(io::Error::from)?;
        Ok(Self {
            _socket: socket,
            port: bound.port(),
        })
    }

    /// The port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }
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

/// Runs `start` with a free loopback port, on a new port each time the server lost a race
/// for it (an error of kind [`io::ErrorKind::AddrInUse`]: another process bound the port
/// between [`free_port`] and the server's bind), five attempts at most. Any other error is
/// returned at once.
///
/// # Errors
///
/// The first error that is not a lost port, or the last one when every attempt lost.
pub(crate) fn start_on_a_free_port(mut start: impl FnMut(u16) -> io::Result<()>) -> io::Result<()> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match start(free_port()?) {
            Err(error) if error.kind() == io::ErrorKind::AddrInUse && attempts < 5 => {}
            result => return result,
        }
    }
}

/// Runs `start` (a restart on the server's own port) again while it fails because the port
/// is taken (an error of kind [`io::ErrorKind::AddrInUse`]): another socket may hold it for
/// a moment, e.g. a client's connection that was given it as its local port. Retries every
/// 100 ms for up to `timeout`.
///
/// # Errors
///
/// The first error that is not a taken port, or the last one after `timeout`.
pub(crate) fn retry_while_the_port_is_taken(
    timeout: Duration,
    mut start: impl FnMut() -> io::Result<()>,
) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match start() {
            Err(error) if error.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_port_refuses_connects_while_it_is_held() {
        let refused = RefusedPort::reserve().unwrap();
        let error = TcpStream::connect(("127.0.0.1", refused.port())).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
        assert!(
            TcpListener::bind(("127.0.0.1", refused.port())).is_err(),
            "the port is held"
        );
    }

    #[test]
    fn a_lost_port_is_retried_on_a_new_one_and_any_other_error_is_not() {
        let mut ports = Vec::new();
        let result = start_on_a_free_port(|port| {
            ports.push(port);
            if ports.len() < 3 {
                Err(io::Error::new(io::ErrorKind::AddrInUse, "taken"))
            } else {
                Ok(())
            }
        });
        assert!(result.is_ok());
        assert_eq!(ports.len(), 3);

        let mut calls = 0;
        let result = start_on_a_free_port(|_| {
            calls += 1;
            Err(io::Error::new(io::ErrorKind::AddrInUse, "always taken"))
        });
        assert_eq!(
            result.map_err(|error| error.kind()),
            Err(io::ErrorKind::AddrInUse)
        );
        assert_eq!(calls, 5, "bounded");

        let mut calls = 0;
        let result = start_on_a_free_port(|_| {
            calls += 1;
            Err(io::Error::other("initdb failed"))
        });
        assert!(result.is_err());
        assert_eq!(calls, 1, "not a port race: no retry");
    }

    #[test]
    fn a_restart_is_retried_while_its_port_is_taken_and_not_past_the_timeout() {
        let mut calls = 0;
        let result = retry_while_the_port_is_taken(Duration::from_secs(60), || {
            calls += 1;
            if calls < 3 {
                Err(io::Error::new(io::ErrorKind::AddrInUse, "taken"))
            } else {
                Ok(())
            }
        });
        assert!(result.is_ok());
        assert_eq!(calls, 3);

        let mut calls = 0;
        let result = retry_while_the_port_is_taken(Duration::ZERO, || {
            calls += 1;
            Err(io::Error::new(io::ErrorKind::AddrInUse, "taken"))
        });
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }
}
