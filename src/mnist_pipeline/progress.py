"""Progress on the terminal for the commands that take more than a few seconds.

tqdm draws on stderr only when it is a terminal (``disable=None``): piped output, ``--json`` and
the one-line errors stay as they are.
"""

from __future__ import annotations

from types import TracebackType

from tqdm import tqdm


class Steps:
    """A bar over a command's named steps: ``with Steps("mnist report", 4) as step: step("cost")``.

    Calling it with the next step's name marks the previous one done and shows the new name.
    """

    def __init__(self, description: str, total: int) -> None:
        """Open the bar.

        Args:
            description: The command, shown first.
            total: How many steps there are.
        """
        self._bar = tqdm(total=total, desc=description, unit="step", disable=None, leave=False)
        self._started = False

    def __call__(self, name: str) -> None:
        """Start step ``name``; the previous one is done."""
        if self._started:
            self._bar.update(1)
        self._started = True
        self._bar.set_postfix_str(name)

    def __enter__(self) -> Steps:
        """The bar, for ``with``."""
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Complete the bar when every step ran, and close it either way."""
        if kind is None and self._started:
            self._bar.update(1)
        self._bar.close()
