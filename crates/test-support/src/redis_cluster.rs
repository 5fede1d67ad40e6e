//! A throwaway three-master Redis Cluster.
//!
//! The crate re-exports [`RedisCluster`], whose documentation says how it is made.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::{Duration, Instant};

use crate::net::free_port;
use crate::process::{log_tail, ServiceProcess};
use crate::redis::{Redis, RedisBuilder};
use crate::server::{ManagedServer, ServerKind};
use crate::STARTUP_TIMEOUT;

/// How many masters the cluster has.
const MASTERS: usize = 3;

/// Slots in a Redis Cluster.
const SLOTS: u16 = 16384;

/// Settings for a [`RedisCluster`] before it starts.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct RedisClusterBuilder {
    options: Vec<(String, String)>,
}

impl RedisClusterBuilder {
    /// Any other `redis-server` option for every node, e.g.
    /// `("cluster-node-timeout", "2000")` for a fault test that wants a stopped master noticed
    /// sooner than Redis's default 15 s.
    pub fn option(mut self, name: &str, value: &str) -> Self {
        self.options.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Starts the three nodes and joins them into a cluster.
    ///
    /// # Errors
    ///
    /// When `redis-server` is missing or a node does not start (see
    /// [`RedisBuilder::start`](crate::RedisBuilder::start)), when a node refuses a cluster
    /// command (e.g. a Redis older than 7.0), or when the cluster is not `ok` on every node
    /// within [`STARTUP_TIMEOUT`].
    pub fn start(self) -> io::Result<RedisCluster> {
        let mut nodes = Vec::with_capacity(MASTERS);
        for index in 0..MASTERS {
            let dir = tempfile::Builder::new()
                .prefix(&format!("resync-redis-cluster-{index}-"))
                .tempdir()?;
            let mut base = RedisBuilder::default()
                .option("cluster-enabled", "yes")
                .option("cluster-config-file", "nodes.conf");
            for (name, value) in &self.options {
                base = base.option(name, value);
            }
            let kind = RedisClusterNode {
                base,
                cluster_port: AtomicU16::new(0),
                started: AtomicBool::new(false),
            };
            nodes.push(ManagedServer::start_on_a_free_port(dir, kind)?);
        }
        let mut cluster = RedisCluster {
            nodes,
            stopped: [false; MASTERS],
        };
        cluster.join()?;
        Ok(cluster)
    }
}

/// Three `redis-server` masters on 127.0.0.1 joined into one Redis Cluster, with all 16384
/// slots shared between them. Every node is stopped and its directory deleted on drop.
///
/// [`RedisCluster::start`] starts three `redis-server` processes with `cluster-enabled yes`,
/// each a [`ManagedServer`] on its own free loopback port and in its own temporary directory
/// (with its own `nodes.conf`, no persistence), and with its cluster bus on a second free
/// port (`cluster-port`) rather than the default port + 10000, which may be taken or beyond
/// 65535. It then joins them itself over plain RESP — `CLUSTER ADDSLOTSRANGE` (node `i`
/// gets [`RedisCluster::slots(i)`](RedisCluster::slots), all 16384 slots between the three,
/// as `redis-cli --cluster create` would share them), `CLUSTER SET-CONFIG-EPOCH`, and
/// `CLUSTER MEET` from the first node to the others — so nothing beyond `redis-server` is
/// needed, and waits, polling `CLUSTER INFO` on every node, until each reports
/// `cluster_state:ok`, all 16384 slots served and three known nodes. That takes about 2 s:
/// Redis holds a freshly started master's state at `fail` that long before it serves. Needs
/// Redis 7.0 or later (`cluster-port`, `ADDSLOTSRANGE`).
///
/// A node may be stopped and started again on the same ports with the same node id
/// ([`RedisCluster::stop_node`], [`RedisCluster::start_node`]) or paused
/// ([`RedisCluster::node`] → [`ManagedServer::pause`]) for fault tests. The nodes keep Redis's
/// default `cluster-node-timeout` (15 s) unless [`RedisClusterBuilder::option`] sets another.
/// A node's data does not survive a restart (no persistence); its slots and node id do.
///
/// ```no_run
/// let cluster = test_support::RedisCluster::start().expect("the cluster forms");
/// // Give the redis crate's `cluster::ClusterClient` every node (or just one).
/// println!("cluster nodes: {:?}", cluster.urls());
/// // `{b}`, `{c}` and `{a}` hash to slots 3300, 7365 and 15495: one on each master.
/// assert_eq!(test_support::RedisCluster::key_slot(b"{b}:x"), 3300);
/// assert_eq!(test_support::RedisCluster::node_for_slot(3300), 0);
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<ManagedServer<RedisClusterNode>>,
    /// Nodes stopped through [`RedisCluster::stop_node`] (not expected to answer).
    stopped: [bool; MASTERS],
}

impl RedisCluster {
    /// Starts a cluster with the default settings.
    ///
    /// # Errors
    ///
    /// See [`RedisClusterBuilder::start`].
    pub fn start() -> io::Result<Self> {
        RedisClusterBuilder::default().start()
    }

    /// A builder for a cluster with other settings.
    pub fn builder() -> RedisClusterBuilder {
        RedisClusterBuilder::default()
    }

    /// Every node's URL, `redis://127.0.0.1:PORT/`, node 0 first.
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(ManagedServer::url).collect()
    }

    /// The first node's URL: enough for a cluster client to discover the others.
    #[must_use]
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// Node `index` (0, 1 or 2): its port, cluster bus port, directory (`redis.log`,
    /// `nodes.conf`), and [`pause`](ManagedServer::pause) / [`resume`](ManagedServer::resume).
    ///
    /// # Panics
    ///
    /// When `index` is 3 or more.
    #[must_use]
    pub fn node(&self, index: usize) -> &ManagedServer<RedisClusterNode> {
        &self.nodes[index]
    }

    /// The slots node `index` serves: `0..=5460`, `5461..=10922` and `10923..=16383`.
    ///
    /// # Panics
    ///
    /// When `index` is 3 or more.
    #[must_use]
    pub fn slots(index: usize) -> RangeInclusive<u16> {
        assert!(
            index < MASTERS,
            "the cluster has {MASTERS} nodes, not {index} + 1"
        );
        // Where node `index`'s share starts: index × 16384 / 3, rounded to the nearest slot.
        let bound = |index: usize| {
            let twice = 2 * index * usize::from(SLOTS);
            u16::try_from((twice + MASTERS) / (2 * MASTERS)).expect("a slot fits in u16")
        };
        bound(index)..=bound(index + 1) - 1
    }

    /// Which node serves `slot`.
    ///
    /// # Panics
    ///
    /// When `slot` is 16384 or more.
    #[must_use]
    pub fn node_for_slot(slot: u16) -> usize {
        (0..MASTERS)
            .find(|&index| Self::slots(index).contains(&slot))
            .unwrap_or_else(|| panic!("{slot} is not a slot: there are {SLOTS}"))
    }

    /// The slot of `key`, as `CLUSTER KEYSLOT` computes it: CRC16 (XMODEM) of the key, or of
    /// its hash tag — what lies between the first `{` and the next `}` when that is not
    /// empty — modulo 16384. Keys with the same hash tag share a slot, so one multi-key
    /// command may name them all.
    #[must_use]
    pub fn key_slot(key: &[u8]) -> u16 {
        let hashed = key
            .iter()
            .position(|&byte| byte == b'{')
            .and_then(|open| {
                let rest = &key[open + 1..];
                let close = rest.iter().position(|&byte| byte == b'}')?;
                (close > 0).then(|| &rest[..close])
            })
            .unwrap_or(key);
        crc16_xmodem(hashed) % SLOTS
    }

    /// Stops node `index` (its data is lost; its slots and node id are kept in its
    /// `nodes.conf` for [`start_node`](Self::start_node)). The other nodes mark it failed
    /// after `cluster-node-timeout`, and from then on report `cluster_state:fail`: with no
    /// replicas, its slots are not served.
    ///
    /// # Errors
    ///
    /// When waiting for the process fails.
    ///
    /// # Panics
    ///
    /// When `index` is 3 or more.
    pub fn stop_node(&mut self, index: usize) -> io::Result<()> {
        self.nodes[index].stop()?;
        self.stopped[index] = true;
        Ok(())
    }

    /// Starts a stopped node again on the same ports and waits until the cluster is `ok` on
    /// every node again ([`wait_until_ok`](Self::wait_until_ok)). A master that the others
    /// had marked failed is cleared only 2 × `cluster-node-timeout` after it was marked.
    ///
    /// # Errors
    ///
    /// When the node does not start, or the cluster is not `ok` within [`STARTUP_TIMEOUT`].
    ///
    /// # Panics
    ///
    /// When `index` is 3 or more.
    pub fn start_node(&mut self, index: usize) -> io::Result<()> {
        self.nodes[index].start_again()?;
        self.stopped[index] = false;
        self.wait_until_ok()
    }

    /// Waits until every node not stopped through [`stop_node`](Self::stop_node) reports
    /// `cluster_state:ok`, all 16384 slots served (`cluster_slots_ok`) and three known nodes
    /// in `CLUSTER INFO`, polling every 20 ms for up to [`STARTUP_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// `TimedOut`, with each node's last answer, when that does not happen in time; another
    /// error at once when a node's process has exited.
    pub fn wait_until_ok(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let mut not_ok = Vec::new();
            for (index, node) in self.nodes.iter_mut().enumerate() {
                if self.stopped[index] {
                    continue;
                }
                if !node.is_running() {
                    return Err(io::Error::other(format!(
                        "redis cluster node {index} (port {}) exited; its log ends with:\n{}",
                        node.port(),
                        log_tail(&node.dir().join("redis.log"), 40)
                    )));
                }
                let why = match command(node.port(), &["CLUSTER", "INFO"]) {
                    Ok(info) if cluster_is_ok(&info) => continue,
                    Ok(info) => format!("answers\n{info}"),
                    Err(error) => error.to_string(),
                };
                not_ok.push(format!("node {index} (port {}) {why}", node.port()));
            }
            if not_ok.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the redis cluster was not ok within {STARTUP_TIMEOUT:?}:\n{}",
                        not_ok.join("\n")
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Gives every node its slots and a distinct config epoch, and has node 0 meet the
    /// others (gossip introduces them to each other); then waits until the cluster is `ok`.
    fn join(&mut self) -> io::Result<()> {
        for (index, node) in self.nodes.iter().enumerate() {
            let slots = Self::slots(index);
            let (first, last) = (slots.start().to_string(), slots.end().to_string());
            command(node.port(), &["CLUSTER", "ADDSLOTSRANGE", &first, &last])?;
            let epoch = (index + 1).to_string();
            command(node.port(), &["CLUSTER", "SET-CONFIG-EPOCH", &epoch])?;
        }
        let introducer = self.nodes[0].port();
        for node in &self.nodes[1..] {
            let (port, bus) = (node.port().to_string(), node.cluster_port().to_string());
            command(introducer, &["CLUSTER", "MEET", "127.0.0.1", &port, &bus])?;
        }
        self.wait_until_ok()
    }
}

/// The kind of [`ManagedServer`] a [`RedisCluster`]'s nodes are: a `redis-server` with
/// `cluster-enabled yes` and its cluster bus on a port of its own, kept across restarts.
#[derive(Debug)]
pub struct RedisClusterNode {
    base: RedisBuilder,
    /// 0 until a start picks one.
    cluster_port: AtomicU16,
    /// Whether a start succeeded: from then on both ports stay the same.
    started: AtomicBool,
}

impl ManagedServer<RedisClusterNode> {
    /// The node's cluster bus port on 127.0.0.1 (`cluster-port`).
    #[must_use]
    pub fn cluster_port(&self) -> u16 {
        self.kind().cluster_port.load(Ordering::Relaxed)
    }
}

impl ServerKind for RedisClusterNode {
    const NAME: &'static str = "redis-cluster-node";

    /// `redis://127.0.0.1:PORT/`.
    fn url(&self, port: u16) -> String {
        format!("redis://127.0.0.1:{port}/")
    }

    /// One start as a plain [`Redis`] does, with `cluster-port` set too. When the first
    /// start loses either port (`AddrInUse`), the next attempt picks a new cluster bus port
    /// as well as a new port; a restart keeps both.
    fn start_once(&self, dir: &Path, port: u16) -> io::Result<ServiceProcess> {
        let mut bus = self.cluster_port.load(Ordering::Relaxed);
        if bus == 0 {
            bus = loop {
                let candidate = free_port()?;
                if candidate != port {
                    break candidate;
                }
            };
            self.cluster_port.store(bus, Ordering::Relaxed);
        }
        let builder = self.base.clone().option("cluster-port", &bus.to_string());
        let result = Redis::new(builder).start_once(dir, port);
        match &result {
            Ok(_) => self.started.store(true, Ordering::Relaxed),
            Err(error)
                if error.kind() == io::ErrorKind::AddrInUse
                    && !self.started.load(Ordering::Relaxed) =>
            {
                self.cluster_port.store(0, Ordering::Relaxed);
            }
            Err(_) => {}
        }
        result
    }
}

/// Whether a `CLUSTER INFO` answer shows a usable three-node cluster with every slot served.
fn cluster_is_ok(info: &str) -> bool {
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let slots = SLOTS.to_string();
    let known = MASTERS.to_string();
    field("cluster_state") == Some("ok")
        && field("cluster_slots_ok") == Some(slots.as_str())
        && field("cluster_known_nodes") == Some(known.as_str())
}

/// Sends one command to the node on `port` over a new connection and returns its answer as
/// text (a simple string, integer or bulk string; an empty string for nil).
///
/// # Errors
///
/// When the node cannot be reached, answers an error, or answers with an array.
fn command(port: u16, args: &[&str]) -> io::Result<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    (&stream).write_all(&request)?;
    read_reply(&mut BufReader::new(&stream)).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("`{}` to redis on port {port}: {error}", args.join(" ")),
        )
    })
}

/// Reads one RESP2 reply that is not an array.
fn read_reply(reader: &mut impl BufRead) -> io::Result<String> {
    let mut header = Vec::new();
    reader.read_until(b'\n', &mut header)?;
    let Some(line) = header.strip_suffix(b"\r\n") else {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed before a whole reply",
        ));
    };
    let line = String::from_utf8_lossy(line);
    let invalid = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected reply `{line}`"),
        )
    };
    let (kind, rest) = (line.get(..1).ok_or_else(invalid)?, &line[1..]);
    match kind {
        "+" | ":" => Ok(rest.to_owned()),
        "-" => Err(io::Error::other(format!("redis answered `{rest}`"))),
        "$" => {
            let length: i64 = rest.parse().map_err(|_| invalid())?;
            let Ok(length) = usize::try_from(length) else {
                return Ok(String::new());
            };
            let mut body = vec![0; length + 2];
            reader.read_exact(&mut body)?;
            body.truncate(length);
            Ok(String::from_utf8_lossy(&body).into_owned())
        }
        _ => Err(invalid()),
    }
}

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), the hash of Redis Cluster's
/// key slots.
fn crc16_xmodem(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0_u16, |crc, &byte| {
        (0..8).fold(crc ^ (u16::from(byte) << 8), |crc, _| {
            if crc & 0x8000 == 0 {
                crc << 1
            } else {
                (crc << 1) ^ 0x1021
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slots_are_shared_as_redis_cli_shares_them() {
        assert_eq!(RedisCluster::slots(0), 0..=5460);
        assert_eq!(RedisCluster::slots(1), 5461..=10922);
        assert_eq!(RedisCluster::slots(2), 10923..=16383);
        assert_eq!(RedisCluster::node_for_slot(0), 0);
        assert_eq!(RedisCluster::node_for_slot(5461), 1);
        assert_eq!(RedisCluster::node_for_slot(16383), 2);
    }

    #[test]
    fn key_slots_follow_the_cluster_spec() {
        // The spec's check value for CRC16/XMODEM, and its hash-tag examples.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
        assert_eq!(RedisCluster::key_slot(b"123456789"), 0x31C3 % SLOTS);
        let user = RedisCluster::key_slot(b"user1000");
        assert_eq!(RedisCluster::key_slot(b"{user1000}.following"), user);
        assert_eq!(RedisCluster::key_slot(b"{user1000}.followers"), user);
        assert_eq!(
            RedisCluster::key_slot(b"foo{}{bar}"),
            crc16_xmodem(b"foo{}{bar}") % SLOTS,
            "an empty tag: the whole key"
        );
        assert_eq!(
            RedisCluster::key_slot(b"foo{{bar}}zap"),
            RedisCluster::key_slot(b"{bar")
        );
        assert_eq!(
            RedisCluster::key_slot(b"foo{bar}{zap}"),
            RedisCluster::key_slot(b"bar")
        );
        assert_eq!(RedisCluster::key_slot(b"{a}"), 15495);
        assert_eq!(RedisCluster::key_slot(b"{b}"), 3300);
        assert_eq!(RedisCluster::key_slot(b"{c}"), 7365);
    }

    #[test]
    fn a_reply_is_read_whole_and_an_error_is_an_error() {
        let read = |raw: &[u8]| read_reply(&mut &raw[..]);
        assert_eq!(read(b"+OK\r\n").unwrap(), "OK");
        assert_eq!(read(b":42\r\n").unwrap(), "42");
        assert_eq!(read(b"$5\r\na\r\nbc\r\n").unwrap(), "a\r\nbc");
        assert_eq!(read(b"$-1\r\n").unwrap(), "");
        assert!(read(b"-ERR unknown\r\n")
            .unwrap_err()
            .to_string()
            .contains("ERR unknown"));
        assert!(read(b"*1\r\n+OK\r\n").is_err());
        assert!(read(b"+OK").is_err());
        assert!(read(b"$5\r\nab").is_err());
    }
}
