//! A small keep-alive HTTP/1.1 client for the preflight, the warm passes and their checks:
//! each response's status, its cache header and its body length.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};

use crate::interrupt;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What a request got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    /// The value of the target's cache header, when asked for and present.
    pub(crate) cache: Option<String>,
    pub(crate) body_len: usize,
}

/// One connection to `addr`, opened again when the server closed it.
pub(crate) struct Client {
    addr: SocketAddr,
    cache_header: Option<&'static str>,
    connection: Option<BufReader<TcpStream>>,
}

impl Client {
    /// A client of `addr` that reads the header `cache_header` (lower case) of responses.
    pub(crate) fn new(addr: SocketAddr, cache_header: Option<&'static str>) -> Self {
        Self {
            addr,
            cache_header,
            connection: None,
        }
    }

    /// `GET path`; a reused connection that turns out closed is opened again once.
    pub(crate) fn get(&mut self, path: &str) -> Result<Response> {
        let reused = self.connection.is_some();
        match self.try_get(path) {
            Err(_) if reused => {
                self.connection = None;
                self.try_get(path)
            }
            result => result,
        }
    }

    fn try_get(&mut self, path: &str) -> Result<Response> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            none => {
                let stream = TcpStream::connect_timeout(&self.addr, REQUEST_TIMEOUT)
                    .with_context(|| format!("connecting to {}", self.addr))?;
                stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
                stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
                stream.set_nodelay(true)?;
                none.insert(BufReader::new(stream))
            }
        };
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        let sent = connection.get_mut().write_all(request.as_bytes());
        let result = sent
            .map_err(anyhow::Error::from)
            .and_then(|()| read_response(connection, self.cache_header));
        match result {
            Ok((response, keep)) => {
                if !keep {
                    self.connection = None;
                }
                Ok(response)
            }
            Err(error) => {
                self.connection = None;
                Err(error.context(format!("GET {path} from {}", self.addr)))
            }
        }
    }
}

/// Reads one response; also says whether the connection stays open.
fn read_response(
    reader: &mut impl BufRead,
    cache_header: Option<&str>,
) -> Result<(Response, bool)> {
    let mut line = String::new();
    ensure!(
        reader.read_line(&mut line)? > 0,
        "the connection closed before a response"
    );
    let mut words = line.split_whitespace();
    let version = words.next().unwrap_or_default().to_owned();
    let status: u16 = words
        .next()
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("bad status line {:?}", line.trim_end()))?;
    let mut keep = version == "HTTP/1.1";
    let mut length = None;
    let mut chunked = false;
    let mut cache = None;
    loop {
        line.clear();
        ensure!(
            reader.read_line(&mut line)? > 0,
            "the connection closed in the headers"
        );
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            bail!("bad header line {header:?}");
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => {
                length = Some(
                    value
                        .parse::<usize>()
                        .with_context(|| format!("bad Content-Length {value:?}"))?,
                );
            }
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => {
                let value = value.to_ascii_lowercase();
                if value.contains("close") {
                    keep = false;
                } else if value.contains("keep-alive") {
                    keep = true;
                }
            }
            _ => {}
        }
        if cache_header == Some(name.as_str()) {
            cache = Some(value.to_owned());
        }
    }
    let body_len = if chunked {
        read_chunked(reader)?
    } else if let Some(length) = length {
        let mut body = vec![0; length];
        reader
            .read_exact(&mut body)
            .context("the body was cut short")?;
        length
    } else {
        // No length: the body runs to the close.
        keep = false;
        let mut body = Vec::new();
        reader.read_to_end(&mut body)?;
        body.len()
    };
    Ok((
        Response {
            status,
            cache,
            body_len,
        },
        keep,
    ))
}

/// Reads a chunked body and its trailers; returns the body's length.
fn read_chunked(reader: &mut impl BufRead) -> Result<usize> {
    let mut total = 0;
    let mut line = String::new();
    loop {
        line.clear();
        ensure!(
            reader.read_line(&mut line)? > 0,
            "the connection closed in a chunked body"
        );
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(hex, 16)
            .with_context(|| format!("bad chunk size {:?}", line.trim_end()))?;
        if size == 0 {
            loop {
                line.clear();
                ensure!(
                    reader.read_line(&mut line)? > 0,
                    "the connection closed in the trailers"
                );
                if line.trim_end().is_empty() {
                    return Ok(total);
                }
            }
        }
        let mut chunk = vec![0; size + 2];
        reader
            .read_exact(&mut chunk)
            .context("a chunk was cut short")?;
        total += size;
    }
}

/// A pass over a set of paths.
#[derive(Debug, Default)]
pub(crate) struct Pass {
    /// How many responses had each value of the cache header (`-` when absent).
    pub(crate) cache: BTreeMap<String, usize>,
    pub(crate) elapsed: Duration,
}

impl Pass {
    /// Responses whose cache header was `value`.
    pub(crate) fn count(&self, value: &str) -> usize {
        self.cache.get(value).copied().unwrap_or(0)
    }
}

/// `GET` of every path once, over `connections` keep-alive connections at once; every answer
/// must be 200. Fails at the first other answer or error, after `bound`, or on an interrupt.
pub(crate) fn pass(
    addr: SocketAddr,
    cache_header: Option<&'static str>,
    paths: &[String],
    connections: usize,
    bound: Duration,
) -> Result<Pass> {
    let started = Instant::now();
    let deadline = started + bound;
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let counts: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|scope| {
        for worker in 0..connections.max(1) {
            let (stop, first_error, counts) = (&stop, &first_error, &counts);
            scope.spawn(move || {
                let mut client = Client::new(addr, cache_header);
                let mut own: BTreeMap<String, usize> = BTreeMap::new();
                let outcome = paths
                    .iter()
                    .skip(worker)
                    .step_by(connections.max(1))
                    .try_for_each(|path| {
                        if stop.load(Ordering::Relaxed) {
                            bail!("stopped");
                        }
                        if interrupt::interrupted() {
                            bail!("interrupted");
                        }
                        if Instant::now() >= deadline {
                            bail!("not done within {bound:?}");
                        }
                        let response = client.get(path)?;
                        ensure!(
                            response.status == 200,
                            "GET {path} answered {} (expected 200)",
                            response.status
                        );
                        let value = response.cache.unwrap_or_else(|| "-".to_owned());
                        *own.entry(value).or_default() += 1;
                        Ok(())
                    });
                if let Err(error) = outcome {
                    if !stop.swap(true, Ordering::Relaxed) {
                        if let Ok(mut slot) = first_error.lock() {
                            *slot = Some(error);
                        }
                    }
                }
                if let Ok(mut counts) = counts.lock() {
                    for (value, count) in own {
                        *counts.entry(value).or_default() += count;
                    }
                }
            });
        }
    });
    if let Some(error) = first_error
        .into_inner()
        .map_err(|_| anyhow!("a worker panicked"))?
    {
        return Err(error);
    }
    Ok(Pass {
        cache: counts
            .into_inner()
            .map_err(|_| anyhow!("a worker panicked"))?,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &[u8], header: Option<&str>) -> Result<(Response, bool)> {
        read_response(&mut BufReader::new(raw), header)
    }

    #[test]
    fn reads_a_response_with_a_length_and_its_cache_header() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Cache: HIT\r\n\r\nhello";
        let (response, keep) = read(raw, Some("x-cache")).unwrap();
        assert_eq!(
            response,
            Response {
                status: 200,
                cache: Some("HIT".to_owned()),
                body_len: 5
            }
        );
        assert!(keep);
    }

    #[test]
    fn reads_a_chunked_response_and_a_close() {
        let raw =
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                    3\r\nabc\r\na;x=1\r\n0123456789\r\n0\r\n\r\n";
        let (response, keep) = read(raw, Some("x-cache")).unwrap();
        assert_eq!(response.status, 404);
        assert_eq!(response.cache, None);
        assert_eq!(response.body_len, 13);
        assert!(!keep);
    }

    #[test]
    fn reads_two_responses_in_a_row() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Cache-Status: MISS\r\n\r\nab\
                    HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-Cache-Status: HIT\r\n\r\nc";
        let mut reader = BufReader::new(&raw[..]);
        let first = read_response(&mut reader, Some("x-cache-status")).unwrap();
        let second = read_response(&mut reader, Some("x-cache-status")).unwrap();
        assert_eq!(first.0.cache.as_deref(), Some("MISS"));
        assert_eq!(second.0.cache.as_deref(), Some("HIT"));
        assert_eq!(second.0.body_len, 1);
    }

    #[test]
    fn rejects_a_body_cut_short() {
        assert!(read(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab", None).is_err());
        assert!(read(b"", None).is_err());
    }
}
