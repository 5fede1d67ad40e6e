//! [`HealthProbe`] for bb8-redis's `RedisConnectionManager` (feature `bb8-redis`), so a pool
//! built on it can be monitored and health-checked like one on [`RedisManager`].
//!
//! Its timeouts are the redis crate's defaults and cannot be changed: bb8-redis connects with
//! `Client::get_multiplexed_async_connection`, which uses `AsyncConnectionConfig::new()` —
//! a connect timeout of 1 s (the pool's `connect_timeout` still bounds every connect too, so
//! the shorter of the two applies) and a response timeout of 500 ms on every command,
//! including the caller's own. [`RedisManager`] sets the response timeout and leaves connects
//! to the pool's `connect_timeout` alone.
//!
//! [`RedisManager`]: crate::RedisManager

use bb8_redis::RedisConnectionManager;

use crate::backends::redis::ping;
use crate::probe::HealthProbe;

impl HealthProbe for RedisConnectionManager {
    /// `PING`, answered `PONG` (the same round trip as [`RedisManager`](crate::RedisManager)'s).
    async fn probe(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        ping(conn).await
    }
}
