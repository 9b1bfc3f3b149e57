"""The test suite: tests/x/test_y.py tests x/y.py; tests/system holds suites that cross packages."""
