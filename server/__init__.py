"""The HTTP layer both doors share: middleware, health, metrics, logs, serving, the workers."""
