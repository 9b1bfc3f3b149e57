"""Tests of rest_compat/: the REST door, its bodies and its OpenAPI document."""
