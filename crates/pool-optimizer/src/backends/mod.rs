//! Backend managers: Postgres, Redis, HTTP and closure-built resources; the health probe of
//! bb8-redis's manager.

#[cfg(feature = "bb8-redis")]
pub(crate) mod bb8_redis;
pub(crate) mod generic;
pub(crate) mod http;
pub(crate) mod postgres;
pub(crate) mod redis;
