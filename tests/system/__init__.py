"""Suites that cross packages: both doors side by side, isolation, fuzzing, outages, browsers."""
