"""The spec's acceptance scenarios, each run through both doors (REST and GraphQL) alike."""
