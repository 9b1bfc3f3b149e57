"""Tests of db/: SQL statements, the pool, URLs, migrations and the embedded server."""
