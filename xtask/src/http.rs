//! One HTTP/1.1 request on a fresh loopback connection, closed by the server after the
//! response: the one HTTP client of xtask's commands (the docs capture's traffic and its
//! `GET`s of every endpoint, promtool's and ops' scrapes of `/metrics`, the dashboard's API
//! reads in `browser`, the benches' stats).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};

/// How long connecting, sending and reading one response may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A response: its status, headers (names in lower case) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Response {
    /// The first value of header `name` (lower case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// `GET target` to `addr`, with an `Accept` header when given one.
pub(crate) fn get(addr: SocketAddr, target: &str, accept: Option<&str>) -> Result<Response> {
    match accept {
        Some(accept) => request(addr, "GET", target, &[("Accept", accept)], ""),
        None => request(addr, "GET", target, &[], ""),
    }
}

/// `method target` to `addr` with `headers` and `body`.
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Response> {
    ensure!(addr.ip().is_loopback(), "{addr} is not a loopback address");
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .with_context(|| format!("sending {method} {target}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading the response to {method} {target}"))?;
    parse(&raw).with_context(|| format!("the response to {method} {target}"))
}

/// A whole response: status line, headers, and a body by `Content-Length`, chunked, or up to
/// the close.
fn parse(raw: &[u8]) -> Result<Response> {
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).context("headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let mut response = Response {
        status,
        headers,
        body: String::new(),
    };
    let rest = &raw[split + 4..];
    let body = if response
        .header("transfer-encoding")
        .is_some_and(|value| value.contains("chunked"))
    {
        dechunk(rest)?
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length
            .parse()
            .with_context(|| format!("bad Content-Length {length:?}"))?;
        ensure!(rest.len() >= length, "body cut short");
        rest[..length].to_vec()
    } else {
        rest.to_vec()
    };
    response.body = String::from_utf8(body).context("the body is not UTF-8")?;
    Ok(response)
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let Some(end) = rest.windows(2).position(|window| window == b"\r\n") else {
            bail!("a chunk size line without an end");
        };
        let line = std::str::from_utf8(&rest[..end]).context("a chunk size is not UTF-8")?;
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(hex, 16).with_context(|| format!("bad chunk size {line:?}"))?;
        rest = &rest[end + 2..];
        if size == 0 {
            return Ok(body);
        }
        ensure!(rest.len() >= size + 2, "a chunk cut short");
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_length_and_chunked_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Cache: HIT\r\n\
                    Content-Length: 2\r\n\r\n{}";
        let response = parse(raw).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-cache"), Some("HIT"));
        assert_eq!(response.body, "{}");
        let raw = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n\
                    3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let response = parse(raw).unwrap();
        assert_eq!((response.status, response.body.as_str()), (503, "abcde"));
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err(), "no end of headers");
    }

    #[test]
    fn skips_chunk_extensions() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    a;ext=1\r\n0123456789\r\n0\r\n\r\n";
        assert_eq!(parse(raw).unwrap().body, "0123456789");
    }
}
