"""Isolation, proven by search: three users, random operations through both doors, one model."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, rule

import main
from tests.support.app import make_settings
from tests.support.tokens import hs256_token

pytestmark = pytest.mark.slow

DOORS = st.sampled_from(["rest", "graphql"])
TASK_FIELDS = "id title completed"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server_url(database_url: str) -> Iterator[str]:
    """The real app on a real uvicorn server, so the sync state machine can drive it over HTTP."""
    port = _free_port()
    app = main.create_app(make_settings(database_url))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@dataclass
class StoredTask:
    owner: str
    title: str
    completed: bool = False
    deleted: bool = False


class Isolation(RuleBasedStateMachine):
    """The model: who owns which task, what it says, and whether it still exists."""

    base_url = ""
    tasks = Bundle("tasks")

    def __init__(self) -> None:
        super().__init__()
        run = uuid.uuid4().hex[:8]
        self.users = [f"{name}-{run}" for name in ("ann", "bob", "cyd")]
        self.tokens = {user: hs256_token(user) for user in self.users}
        self.model: dict[int, StoredTask] = {}
        self.http = httpx.Client(base_url=self.base_url, timeout=10)
        self.counter = 0

    def teardown(self) -> None:
        self.http.close()

    # --- transport -------------------------------------------------------------------------

    def rest(self, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        response = self.http.request(method, path, headers=headers, **kwargs)
        self.check_no_leak(user, response)
        return response

    def graphql(self, user: str, query: str, **variables: Any) -> dict[str, Any]:
        response = self.http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self.tokens[user]}"},
        )
        self.check_no_leak(user, response)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data

    def check_no_leak(self, user: str, response: httpx.Response) -> None:
        assert response.status_code < 500, response.text
        for stored in self.model.values():
            if stored.owner != user:
                assert stored.title not in response.text, f"{user} saw {stored.owner}'s task"

    # --- rules -------------------------------------------------------------------------

    @rule(target=tasks, user_index=st.integers(0, 2), door=DOORS)
    def create(self, user_index: int, door: str) -> int:
        user = self.users[user_index]
        self.counter += 1
        title = f"{user}'s task #{self.counter}"
        if door == "rest":
            response = self.rest(user, "POST", f"/api/{user}/tasks", json={"title": title})
            assert response.status_code == 201, response.text
            task_id = int(response.json()["id"])
        else:
            query = "mutation($t: String!) { createTask(input: {title: $t}) { task { id } } }"
            task_id = int(self.graphql(user, query, t=title)["createTask"]["task"]["id"])
        self.model[task_id] = StoredTask(owner=user, title=title)
        return task_id

    @rule(user_index=st.integers(0, 2), door=DOORS)
    def list_tasks(self, user_index: int, door: str) -> None:
        user = self.users[user_index]
        if door == "rest":
            response = self.rest(user, "GET", f"/api/{user}/tasks")
            assert response.status_code == 200
            listed = response.json()
        else:
            listed = self.graphql(user, f"{{ tasks(first: 100) {{ nodes {{ {TASK_FIELDS} }} }} }}")
            listed = listed["tasks"]["nodes"]
        expected = {
            task_id: (stored.title, stored.completed)
            for task_id, stored in self.model.items()
            if stored.owner == user and not stored.deleted
        }
        assert {int(t["id"]): (t["title"], t["completed"]) for t in listed} == expected

    @rule(task_id=tasks, user_index=st.integers(0, 2), door=DOORS)
    def get(self, task_id: int, user_index: int, door: str) -> None:
        user = self.users[user_index]
        if door == "rest":
            response = self.rest(user, "GET", f"/api/{user}/tasks/{task_id}")
            found = response.json() if response.status_code == 200 else None
            assert response.status_code in (200, 404)
        else:
            query = f"query($id: ID!) {{ task(id: $id) {{ {TASK_FIELDS} }} }}"
            found = self.graphql(user, query, id=str(task_id))["task"]
        self.check_found(user, task_id, found)

    @rule(task_id=tasks, user_index=st.integers(0, 2), door=DOORS)
    def update(self, task_id: int, user_index: int, door: str) -> None:
        user = self.users[user_index]
        self.counter += 1
        title = f"{user}'s task #{self.counter}"
        if door == "rest":
            response = self.rest(user, "PUT", f"/api/{user}/tasks/{task_id}", json={"title": title})
            updated = self.rest_outcome(response)
        else:
            query = (
                "mutation($id: ID!, $t: String!) { updateTask(id: $id, input: {title: $t}) "
                f"{{ task {{ {TASK_FIELDS} }} userErrors {{ code }} }} }}"
            )
            updated = self.graphql_outcome(self.graphql(user, query, id=str(task_id), t=title))
        if self.owns(user, task_id):
            self.model[task_id].title = title
        self.check_found(user, task_id, updated)

    @rule(task_id=tasks, user_index=st.integers(0, 2), door=DOORS)
    def toggle(self, task_id: int, user_index: int, door: str) -> None:
        user = self.users[user_index]
        if door == "rest":
            response = self.rest(user, "PATCH", f"/api/{user}/tasks/{task_id}/complete")
            toggled = self.rest_outcome(response)
        else:
            query = (
                "mutation($id: ID!) { toggleTaskCompletion(id: $id) "
                f"{{ task {{ {TASK_FIELDS} }} userErrors {{ code }} }} }}"
            )
            toggled = self.graphql_outcome(self.graphql(user, query, id=str(task_id)))
        if self.owns(user, task_id):
            self.model[task_id].completed = not self.model[task_id].completed
        self.check_found(user, task_id, toggled)

    @rule(task_id=tasks, user_index=st.integers(0, 2), door=DOORS)
    def delete(self, task_id: int, user_index: int, door: str) -> None:
        user = self.users[user_index]
        if door == "rest":
            response = self.rest(user, "DELETE", f"/api/{user}/tasks/{task_id}")
            assert response.status_code == (204 if self.owns(user, task_id) else 404)
        else:
            query = (
                "mutation($id: ID!) { deleteTask(id: $id) { deletedTaskId userErrors { code } } }"
            )
            payload = self.graphql(user, query, id=str(task_id))["deleteTask"]
            if self.owns(user, task_id):
                assert payload == {"deletedTaskId": str(task_id), "userErrors": []}
            else:
                assert payload == {"deletedTaskId": None, "userErrors": [{"code": "NOT_FOUND"}]}
        if self.owns(user, task_id):
            self.model[task_id].deleted = True

    @rule(
        task_id=tasks,
        user_index=st.integers(0, 2),
        other_index=st.integers(1, 2),
        method=st.sampled_from(["GET", "PUT", "PATCH", "DELETE", "POST", "LIST"]),
    )
    def other_users_path(
        self, task_id: int, user_index: int, other_index: int, method: str
    ) -> None:
        """Any REST call on another user's path is 403, whoever owns the task id."""
        user = self.users[user_index]
        other = self.users[(user_index + other_index) % 3]
        path = {
            "PATCH": f"/api/{other}/tasks/{task_id}/complete",
            "POST": f"/api/{other}/tasks",
            "LIST": f"/api/{other}/tasks",
        }.get(method, f"/api/{other}/tasks/{task_id}")
        response = self.rest(
            user, "GET" if method == "LIST" else method, path, json={"title": "hijack"}
        )
        assert response.status_code == 403, response.text

    # --- checks ------------------------------------------------------------------------

    def owns(self, user: str, task_id: int) -> bool:
        stored = self.model[task_id]
        return stored.owner == user and not stored.deleted

    def rest_outcome(self, response: httpx.Response) -> dict[str, Any] | None:
        assert response.status_code in (200, 404), response.text
        return response.json() if response.status_code == 200 else None

    def graphql_outcome(self, data: dict[str, Any]) -> dict[str, Any] | None:
        (payload,) = data.values()
        if payload["task"] is None:
            assert payload["userErrors"] == [{"code": "NOT_FOUND"}]
        task: dict[str, Any] | None = payload["task"]
        return task

    def check_found(self, user: str, task_id: int, found: dict[str, Any] | None) -> None:
        """A task comes back exactly when the user owns it, and then as the model has it."""
        if not self.owns(user, task_id):
            assert found is None
            return
        stored = self.model[task_id]
        assert found is not None
        assert (int(found["id"]), found["title"], found["completed"]) == (
            task_id,
            stored.title,
            stored.completed,
        )


def test_users_never_see_or_touch_each_others_tasks(server_url: str) -> None:
    Isolation.base_url = server_url
    Isolation.TestCase.settings = settings(
        max_examples=15,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    Isolation.TestCase().runTest()
