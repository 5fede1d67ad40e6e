//! Instrumented bb8 pools for Postgres, Redis and HTTP with health checks and a queueing-model sizing advisor.
