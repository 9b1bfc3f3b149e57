"""What the tests share (conftest.py holds only fixtures): the app, tokens, databases, servers."""
