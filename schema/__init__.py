"""The GraphQL door: Strawberry types, Query and Mutation, extensions, and the HTTP endpoint."""
