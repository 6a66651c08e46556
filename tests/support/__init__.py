"""What the tests share: worlds built on the session's PostgreSQL server, and their helpers."""
