"""List and create your tasks with the Python gql client: python examples/gql_client.py TOKEN.

Needs `pip install "gql[httpx]"`. TASKQL_URL defaults to the development server.
"""

from __future__ import annotations

import asyncio
import os
import sys

from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport

CREATE_TASK = """
mutation CreateTask($title: String!) {
  createTask(input: { title: $title }) {
    task { id title version }
    userErrors { field message code }
  }
}
"""
MY_TASKS = "query MyTasks { tasks(first: 20) { totalCount nodes { id title completed } } }"


async def main(token: str) -> None:
    url = os.environ.get("TASKQL_URL", "http://127.0.0.1:8000") + "/graphql"
    transport = HTTPXAsyncTransport(url=url, headers={"Authorization": f"Bearer {token}"})
    async with Client(transport=transport) as session:
        created = await session.execute(
            GraphQLRequest(CREATE_TASK, variable_values={"title": "Try taskql"})
        )
        # Expected failures (a blank title, a version conflict) come back as data.
        for error in created["createTask"]["userErrors"]:
            print(f"could not create: {error['message']} ({error['code']})")
        tasks = await session.execute(GraphQLRequest(MY_TASKS))
        for task in tasks["tasks"]["nodes"]:
            print(f"{task['id']:>5} [{'x' if task['completed'] else ' '}] {task['title']}")


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1]))
    except TransportQueryError as error:
        # Other errors (a bad token, an invalid query) carry extensions.code.
        sys.exit(f"taskql refused the request: {error.errors}")
