"""Helpers shared by the test suite: real keys, tokens and loopback servers."""
