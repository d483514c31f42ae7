"""The backtest's progress bar: shown only once a run has taken over a second, and moving within
a long step where the step has parts (the files of a directory, the plots of the report).

rich is imported only when the bar first shows, so a run under a second pays nothing for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

SHOW_AFTER_S = 1.0


class LazyProgress:
    """Steps of a run on a bar on stderr that appears once the run has taken ``SHOW_AFTER_S``.

    ``step`` marks the start of the next step; ``within`` reports how far the current step has
    got in its own parts, so a step that takes long still moves the bar. ``clock`` is
    injectable for tests.
    """

    def __init__(
        self,
        total: int,
        enabled: bool = True,
        *,
        clock: Callable[[], float] = time.perf_counter,
        console: Any = None,
    ) -> None:
        self.total = total
        self.enabled = enabled
        self.completed = 0.0
        """Steps finished, with the current step's finished share: what the bar shows."""
        self.description = ""
        self._steps_started = 0
        self._clock = clock
        self._started = clock()
        self._console = console
        self._progress: Any = None
        self._task: Any = None

    @property
    def shown(self) -> bool:
        return self._progress is not None

    def add(self, steps: int) -> None:
        """Count steps found on the way (the one-time build of the compiled loop)."""
        self.total += steps
        self._refresh(force=False)

    def step(self, description: str, *, force: bool = False) -> None:
        """Start the next step; ``force`` shows the bar at once (a step known to be long)."""
        self.completed = float(min(self._steps_started, self.total))
        self._steps_started += 1
        self.description = description
        self._refresh(force)

    def within(self, description: str, done: int, of: int) -> None:
        """``done`` of the current step's ``of`` parts are finished; ``description`` runs now."""
        start = min(self._steps_started - 1, self.total - 1)
        self.completed = max(start, 0) + (min(done, of) / of if of > 0 else 0.0)
        self.description = description
        self._refresh(force=False)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self.total)
            self._progress.stop()
            self._progress = None

    def _refresh(self, force: bool) -> None:
        if not self.enabled:
            return
        if self._progress is None and (force or self._clock() - self._started > SHOW_AFTER_S):
            self._show()
        if self._progress is not None:
            self._progress.update(
                self._task,
                description=self.description,
                completed=self.completed,
                total=self.total,
            )

    def _show(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description:<40}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f} %"),
            TimeElapsedColumn(),
            console=self._console or Console(stderr=True),
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            self.description, total=self.total, completed=self.completed
        )
