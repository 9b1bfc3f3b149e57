"""Tests of schema/: the GraphQL door."""
