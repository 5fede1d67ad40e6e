//! [`RedisManager`]: the redis crate's multiplexed connection, or its Redis Cluster
//! connection, with honoured timeouts; and [`RedisConnection`], the pool's connection type.
//!
//! Not bb8-redis: its manager connects with the redis crate's default connection config,
//! whose connect (1 s) and response (500 ms) timeouts are fixed, so `REDIS_POOL_CONNECT_TIMEOUT`
//! and a response timeout could not be honoured. This manager sets the response timeout
//! through `AsyncConnectionConfig` (a single server) or `ClusterClientBuilder` (a cluster), and
//! leaves the connect of a pooled connection to the pool's wrapper, which bounds every connect
//! with `PoolConfig::connect_timeout` (`REDIS_POOL_CONNECT_TIMEOUT`).

use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection, PubSub};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Client, Cmd, Pipeline, RedisError, RedisFuture, TlsCertificates, Value,
};

use crate::error::Error;
use crate::probe::HealthProbe;
use crate::tls::read_pem_certificates;

/// Redis connections for a [`MonitoredPool`](crate::MonitoredPool), to one server or to a
/// Redis Cluster.
///
/// # What the URL names
///
/// - **Several URLs separated by commas** (`redis://10.0.0.1:7000,redis://10.0.0.2:7000`)
///   are the seed nodes of a **Redis Cluster**: the cluster client connects to those that
///   answer and learns the rest of the cluster (`CLUSTER SLOTS`) from them. Every seed must
///   use the same scheme (`redis://` or `rediss://`), password and database; a comma inside
///   a password must be percent-encoded (`%2C`). A seed may also be written
///   `redis+cluster://` / `rediss+cluster://`.
/// - **One URL whose scheme is `redis+cluster://` or `rediss+cluster://`**
///   (`redis+cluster://:secret@10.0.0.1:7000`) names a cluster by one seed. `+cluster` is only
///   this crate's marker: it is removed before the URL reaches the redis crate, so the seed
///   is `redis://…` or `rediss://…`.
/// - **Anything else** (`redis://host:6379/0`, `rediss://…`, `redis+unix://…`) is a single
///   server, connected with one multiplexed connection per pooled connection.
///
/// A pooled connection is a [`RedisConnection`]: [`RedisConnection::Single`] for a server,
/// [`RedisConnection::Cluster`] for a cluster (one redis-crate `ClusterConnection`, which
/// holds a multiplexed connection to each master it needs and routes every command by its
/// keys' slot, following `MOVED` / `ASK` redirections). Either way callers write
/// `redis::cmd("GET").arg(key).query_async(&mut *conn)`; pipelines work on a cluster when all
/// their keys share one slot (one hash tag `{…}`), and fail with a `CROSSSLOT` error otherwise.
///
/// # Timeouts
///
/// Every command waits at most `response_timeout` for its answer. On a cluster that bound is
/// also the redis crate's *overall* bound per command, retries, redirections and reconnects
/// included, and it bounds each node connect the cluster client makes (the seeds at connect,
/// and any node it reconnects to later, e.g. after a failover), since a longer node connect
/// could never fit inside a command anyway. The connect of a pooled connection as a whole —
/// for a cluster, seeds plus slot discovery plus the masters — is bounded by the pool's
/// `connect_timeout`, as for a single server, whose own connect timeout is turned off.
///
/// # TLS
///
/// `rediss://` (and `rediss+cluster://`) URLs use rustls; with a CA file only that file's
/// certificates are trusted, otherwise the system roots. With a CA file every URL must be a
/// `rediss` one (for a cluster, every seed): a CA file with a plain `redis://` URL is an
/// [`Error::InvalidUrl`]. The cluster client applies the same TLS settings to the nodes it
/// discovers, so their certificates must be valid for the addresses the cluster announces.
///
/// # Health
///
/// The health probe and the checkout validation are `PING`; on a cluster the redis crate
/// sends it to every master and succeeds only when all answer.
///
/// # Pub/sub
///
/// [`RedisManager::pubsub`] opens a dedicated pub/sub connection outside the pool.
#[derive(Clone)]
pub struct RedisManager {
    target: Target,
}

/// What a [`RedisManager`] connects to.
#[derive(Clone)]
enum Target {
    /// One server.
    Single {
        client: Client,
        config: AsyncConnectionConfig,
    },
    /// A Redis Cluster: the cluster client, and one plain client per seed (with the seed's
    /// URL as shown in messages) for pub/sub connections.
    Cluster {
        client: ClusterClient,
        seeds: Vec<(String, Client)>,
    },
}

impl RedisManager {
    /// A manager for `url` (a server or a cluster: see [`RedisManager`]) whose commands time
    /// out after `response_timeout`. Connects are bounded by the pool's `connect_timeout` (the
    /// wrapper times out every connect), so there is no second connect timeout here; a
    /// cluster client bounds each node connect by `response_timeout` as well.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] for an unusable URL (its `url` names the URL with every password
    /// replaced by `***`), [`Error::Tls`] for an unusable CA file.
    pub fn new(
        url: &str,
        response_timeout: Duration,
        ca_file: Option<&Path>,
    ) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: redacted(url),
            reason,
        };
        let layout = layout(url).map_err(invalid)?;
        let certificates = ca_file.map(tls_certificates).transpose()?;
        let target = match layout {
            Layout::Single(url) => {
                let client = single_client(url, certificates.as_ref())
                    .map_err(|e| invalid(e.to_string()))?;
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(None)
                    .set_response_timeout(Some(response_timeout));
                Target::Single { client, config }
            }
            Layout::Cluster(seeds) => {
                if certificates.is_some() {
                    if let Some(plain) = seeds.iter().find(|seed| !is_tls(seed)) {
                        return Err(invalid(format!(
                            "a CA file needs rediss:// (or rediss+cluster://) URLs, and the \
                             cluster seed {} is not one",
                            redact_one(plain)
                        )));
                    }
                }
                let mut builder = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
                    .response_timeout(response_timeout)
                    .connection_timeout(response_timeout);
                if let Some(certificates) = &certificates {
                    builder = builder.certs(certificates.clone());
                }
                let client = builder
                    .build()
                    .map_err(|e| invalid(format!("as a Redis Cluster: {e}")))?;
                let seeds = seeds
                    .iter()
                    .map(|seed| {
                        let client = single_client(seed, certificates.as_ref()).map_err(|e| {
                            invalid(format!("cluster seed {}: {e}", redact_one(seed)))
                        })?;
                        Ok((redact_one(seed), client))
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                Target::Cluster { client, seeds }
            }
        };
        Ok(Self { target })
    }

    /// Whether the URL named a Redis Cluster (several comma-separated URLs, or a
    /// `redis+cluster://` / `rediss+cluster://` one).
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster { .. })
    }

    /// A new pub/sub connection, not from the pool: to the server, or for a cluster to the
    /// first seed, in the URL's order, that accepts within `connect_timeout`.
    ///
    /// On a cluster any node will do: a classic `PUBLISH` (not `SPUBLISH`) is broadcast over
    /// the cluster bus, so a subscriber on any node receives every message published through
    /// any node. Each attempt (TCP, TLS, `AUTH` / `SELECT`) is bounded by `connect_timeout`,
    /// so the call takes at most that long per seed. The connection has no response timeout
    /// of its own: bound `subscribe` calls yourself if the server may hang. Subscriptions do
    /// not survive a lost connection; the stream of messages ends and the caller connects
    /// again.
    ///
    /// # Errors
    ///
    /// The connect error (an I/O `TimedOut` one, for which `is_timeout()` is true, when the
    /// attempt ran past `connect_timeout`); for a cluster with several seeds of which none
    /// accepted, an I/O error naming each seed and its error.
    pub async fn pubsub(&self, connect_timeout: Duration) -> Result<PubSub, RedisError> {
        match &self.target {
            Target::Single { client, .. } => pubsub_on(client, connect_timeout).await,
            Target::Cluster { seeds, .. } => {
                let mut failures = Vec::with_capacity(seeds.len());
                for (shown, client) in seeds {
                    match pubsub_on(client, connect_timeout).await {
                        Ok(pubsub) => return Ok(pubsub),
                        Err(error) => failures.push((shown.as_str(), error)),
                    }
                }
                if failures.len() == 1 {
                    if let Some((_, error)) = failures.pop() {
                        return Err(error);
                    }
                }
                let detail = failures
                    .iter()
                    .map(|(seed, error)| format!("{seed}: {error}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                Err(RedisError::from((
                    redis::ErrorKind::Io,
                    "no Redis Cluster seed accepted a pub/sub connection",
                    detail,
                )))
            }
        }
    }
}

impl fmt::Debug for RedisManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisManager")
            .field("cluster", &self.is_cluster())
            .finish_non_exhaustive()
    }
}

/// A pooled Redis connection: to one server, or to a Redis Cluster.
///
/// It implements [`redis::aio::ConnectionLike`] by delegating to the variant, so commands,
/// pipelines and [`redis::AsyncCommands`] take `&mut *conn` on a checked-out
/// [`PoolConnection<RedisManager>`](crate::PoolConnection) whatever the URL named. Cloning is
/// cheap and the clone shares the connection (both variants are multiplexed handles).
#[derive(Clone)]
pub enum RedisConnection {
    /// A multiplexed connection to one server.
    Single(MultiplexedConnection),
    /// A Redis Cluster connection: commands are routed by their keys' slot.
    Cluster(ClusterConnection),
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Self::Single(_) => "Single",
            Self::Cluster(_) => "Cluster",
        };
        f.debug_struct("RedisConnection")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

impl From<MultiplexedConnection> for RedisConnection {
    fn from(conn: MultiplexedConnection) -> Self {
        Self::Single(conn)
    }
}

impl From<ClusterConnection> for RedisConnection {
    fn from(conn: ClusterConnection) -> Self {
        Self::Cluster(conn)
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// `PING` on `conn`: an error unless the server answers `PONG` (on a cluster connection every
/// master must answer).
pub(crate) async fn ping<C>(conn: &mut C) -> Result<(), RedisError>
where
    C: ConnectionLike + Send,
{
    let pong: String = redis::cmd("PING").query_async(conn).await?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(RedisError::from((
            redis::ErrorKind::Client,
            "unexpected PING reply",
            pong,
        )))
    }
}

impl bb8::ManageConnection for RedisManager {
    type Connection = RedisConnection;
    type Error = RedisError;

    async fn connect(&self) -> Result<Self::Connection, Self::Error> {
        match &self.target {
            Target::Single { client, config } => client
                .get_multiplexed_async_connection_with_config(config)
                .await
                .map(RedisConnection::Single),
            Target::Cluster { client, .. } => client
                .get_async_connection()
                .await
                .map(RedisConnection::Cluster),
        }
    }

    async fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        ping(conn).await
    }

    fn has_broken(&self, _conn: &mut Self::Connection) -> bool {
        // Neither a multiplexed nor a cluster connection exposes a "closed" flag; a dead one
        // fails its next command, which the caller reports with
        // `PoolConnection::report_error`, and the checkout validation catches it once idle
        // past the skip window.
        false
    }
}

impl HealthProbe for RedisManager {
    async fn probe(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        ping(conn).await
    }
}

/// A pub/sub connection through `client`, bounded by `connect_timeout`.
async fn pubsub_on(client: &Client, connect_timeout: Duration) -> Result<PubSub, RedisError> {
    match tokio::time::timeout(connect_timeout, client.get_async_pubsub()).await {
        Ok(result) => result,
        Err(_elapsed) => Err(RedisError::from(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("pub/sub connect timed out after {connect_timeout:?}"),
        ))),
    }
}

/// A client for one server, trusting only `certificates`' CA when given.
fn single_client(url: &str, certificates: Option<&TlsCertificates>) -> Result<Client, RedisError> {
    match certificates {
        None => Client::open(url),
        Some(certificates) => Client::build_with_tls(url, certificates.clone()),
    }
}

/// The redis crate's TLS settings for a CA file, validated here so that a bad file is
/// reported as a TLS problem.
fn tls_certificates(path: &Path) -> Result<TlsCertificates, Error> {
    read_pem_certificates(path)?;
    let pem = std::fs::read(path)
        .map_err(|e| Error::Tls(format!("cannot read {}: {e}", path.display())))?;
    Ok(TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    })
}

/// What a Redis URL names (see [`RedisManager`]).
#[derive(Debug, PartialEq, Eq)]
enum Layout<'a> {
    /// One server: the URL as given (trimmed).
    Single(&'a str),
    /// A cluster: its seeds' URLs, `+cluster` removed from their schemes.
    Cluster(Vec<String>),
}

/// Splits `url` by the conventions of [`RedisManager`]; the error says what is wrong.
fn layout(url: &str) -> Result<Layout<'_>, String> {
    let url = url.trim();
    if url.is_empty() {
        return Err("no URL given".to_owned());
    }
    if url.contains(',') {
        let mut seeds = Vec::new();
        for (index, part) in url.split(',').enumerate() {
            let part = part.trim();
            if part.is_empty() {
                return Err(format!(
                    "cluster seed {} of the comma-separated list is empty",
                    index + 1
                ));
            }
            seeds.push(strip_cluster(part)?.unwrap_or_else(|| part.to_owned()));
        }
        return Ok(Layout::Cluster(seeds));
    }
    Ok(match strip_cluster(url)? {
        Some(seed) => Layout::Cluster(vec![seed]),
        None => Layout::Single(url),
    })
}

/// `redis+cluster://…` → `redis://…` and `rediss+cluster://…` → `rediss://…` (the scheme in
/// any case); `None` for a URL without `+cluster`; an error for another `…+cluster` scheme.
fn strip_cluster(url: &str) -> Result<Option<String>, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(None);
    };
    let scheme = scheme.to_ascii_lowercase();
    let Some(base) = scheme.strip_suffix("+cluster") else {
        return Ok(None);
    };
    match base {
        "redis" | "rediss" => Ok(Some(format!("{base}://{rest}"))),
        _ => Err(format!(
            "{scheme}:// is not a cluster scheme: use redis+cluster:// or rediss+cluster://"
        )),
    }
}

/// Whether a (`+cluster`-stripped) URL is a `rediss://` one.
fn is_tls(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("rediss"))
}

/// `url` for messages: every comma-separated part with its password replaced by `***`.
fn redacted(url: &str) -> String {
    url.trim()
        .split(',')
        .map(|part| redact_one(part.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

/// One URL for messages: `scheme://user:***@host…` for `scheme://user:password@host…`. What
/// does not look like a URL keeps only what follows its last `@`.
fn redact_one(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.rsplit('@').next().unwrap_or(url).to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(seeds: &[&str]) -> Layout<'static> {
        Layout::Cluster(seeds.iter().map(|seed| (*seed).to_owned()).collect())
    }

    #[test]
    fn one_plain_url_is_a_single_server() {
        for url in [
            "redis://127.0.0.1:6379/0",
            "rediss://:secret@cache.example:6380",
            "redis+unix:///tmp/redis.sock",
        ] {
            assert_eq!(layout(url), Ok(Layout::Single(url)), "{url}");
        }
        assert_eq!(
            layout("  redis://127.0.0.1/ \n"),
            Ok(Layout::Single("redis://127.0.0.1/"))
        );
    }

    #[test]
    fn commas_separate_the_seeds_of_a_cluster() {
        assert_eq!(
            layout("redis://127.0.0.1:7000,redis://127.0.0.1:7001"),
            Ok(cluster(&[
                "redis://127.0.0.1:7000",
                "redis://127.0.0.1:7001"
            ]))
        );
        assert_eq!(
            layout(" rediss://:pw@a:7000 , rediss+cluster://:pw@b:7001/ "),
            Ok(cluster(&["rediss://:pw@a:7000", "rediss://:pw@b:7001/"])),
            "spaces around seeds are trimmed, and a seed may carry +cluster"
        );
    }

    #[test]
    fn a_cluster_scheme_names_a_cluster_by_one_seed() {
        assert_eq!(
            layout("redis+cluster://127.0.0.1:7000"),
            Ok(cluster(&["redis://127.0.0.1:7000"]))
        );
        assert_eq!(
            layout("rediss+cluster://user:pw@cache.example:6380/0"),
            Ok(cluster(&["rediss://user:pw@cache.example:6380/0"]))
        );
        assert_eq!(
            layout("REDIS+Cluster://h:1"),
            Ok(cluster(&["redis://h:1"])),
            "schemes are case-insensitive"
        );
    }

    #[test]
    fn bad_forms_are_explained() {
        assert_eq!(layout(""), Err("no URL given".to_owned()));
        assert_eq!(layout("   "), Err("no URL given".to_owned()));
        let empty = layout("redis://a:1,,redis://b:2").unwrap_err();
        assert!(empty.contains("seed 2"), "{empty}");
        let trailing = layout("redis://a:1,").unwrap_err();
        assert!(trailing.contains("seed 2"), "{trailing}");
        let other = layout("unix+cluster:///tmp/sock").unwrap_err();
        assert!(other.contains("redis+cluster://"), "{other}");
    }

    #[test]
    fn tls_is_told_by_the_scheme() {
        assert!(is_tls("rediss://h:1"));
        assert!(is_tls("REDISS://h:1"));
        assert!(!is_tls("redis://h:1"));
        assert!(!is_tls("h:1"));
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redacted("redis://:secret@h:1/0"),
            "redis://:***@h:1/0".to_owned()
        );
        assert_eq!(
            redacted("rediss://user:secret@h:1,rediss://user:secret@g:2"),
            "rediss://user:***@h:1,rediss://user:***@g:2".to_owned()
        );
        assert_eq!(
            redacted("redis+cluster://:p@ss@h:1"),
            "redis+cluster://:***@h:1".to_owned(),
            "the last @ of the authority ends the password"
        );
        assert_eq!(redacted("redis://h:1/"), "redis://h:1/".to_owned());
        assert_eq!(redacted("user@h:1"), "h:1".to_owned());
    }

    #[test]
    fn new_sorts_servers_from_clusters_and_rejects_bad_urls_without_their_password() {
        let timeout = Duration::from_secs(1);
        let single = RedisManager::new("redis://127.0.0.1:6379", timeout, None).unwrap();
        assert!(!single.is_cluster());
        let seeds = RedisManager::new(
            "redis://127.0.0.1:7000,redis://127.0.0.1:7001",
            timeout,
            None,
        )
        .unwrap();
        assert!(seeds.is_cluster());
        let one = RedisManager::new("redis+cluster://127.0.0.1:7000", timeout, None).unwrap();
        assert!(one.is_cluster());
        assert!(format!("{one:?}").contains("cluster: true"));

        for url in [
            "redis://:hunter2@127.0.0.1:7000,http://:hunter2@127.0.0.1:7001",
            "redis://:hunter2@127.0.0.1:7000,,redis://:hunter2@127.0.0.1:7001",
            "redis://:hunter2@127.0.0.1:7000,rediss://:hunter2@127.0.0.1:7001",
            "redis+unix://:hunter2@/tmp/redis.sock,redis://:hunter2@127.0.0.1:7001",
            "ftp+cluster://:hunter2@127.0.0.1:7000",
            "nonsense://:hunter2@127.0.0.1",
        ] {
            match RedisManager::new(url, timeout, None) {
                Err(Error::InvalidUrl { url: shown, reason }) => {
                    assert!(!shown.contains("hunter2"), "{shown}");
                    assert!(!reason.contains("hunter2"), "{reason}");
                    assert!(shown.contains("127.0.0.1"), "{shown}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }
}
