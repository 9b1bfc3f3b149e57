"""Tests of resolvers/: tokens, validation, paging, rate limits and the per-request context."""
