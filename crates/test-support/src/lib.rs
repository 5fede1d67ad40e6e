//! Throwaway Postgres, Redis and HTTP fixtures for Resync's tests (not published).
