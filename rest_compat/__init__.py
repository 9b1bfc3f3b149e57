"""The REST compatibility door: the spec's /api/{user_id}/tasks routes over the same operations."""
