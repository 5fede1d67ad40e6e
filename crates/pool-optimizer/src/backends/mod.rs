//! Backend managers: Postgres, Redis, HTTP and closure-built resources.

pub(crate) mod generic;
pub(crate) mod http;
pub(crate) mod postgres;
pub(crate) mod redis;
