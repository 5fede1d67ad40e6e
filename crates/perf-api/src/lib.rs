//! The performance service registry and its HTTP API (JSON, Prometheus, OpenAPI) over caches, pools and resources.
