"""Tests of server/: the HTTP layer both doors share."""
