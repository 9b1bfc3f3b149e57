"""Storage: engine, URLs, the tasks table and its queries, migrations, embedded server."""
