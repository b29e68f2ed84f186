"""Storage tests: each runs on SQLite and on a throwaway database on the real Postgres."""
