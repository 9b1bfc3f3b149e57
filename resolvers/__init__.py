"""The domain: who is asking, what they may do, and one function per task operation."""
