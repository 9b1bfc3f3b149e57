"""For measurements only: the API's workers announce no wake-ups to other workers.

`bench/run.py --api-env PYTHONPATH=bench/no_wakeups` makes every process of the API (the
supervisor and the workers it spawns, which inherit the environment) import this at start-up,
so that writes record their events as usual but send no NOTIFY: against a run without it, the
difference is what the wake-ups cost writes. Subscribers on other workers then see events
late (at their next read), so never use it for the live scenarios.
"""

from resolvers.wakeups import WakeUps


def _announce_nothing(self: WakeUps, key: str) -> None:
    """Nothing: the write's own worker has already woken its streams."""


WakeUps.add = _announce_nothing  # type: ignore[method-assign]
