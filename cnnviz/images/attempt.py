"""What reading a picture came to, kept whole: its result, or the sentence of its ImageError."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cnnviz.images.decode import ImageError

T = TypeVar("T")


@dataclass(frozen=True)
class Attempt(Generic[T]):
    """What reading a picture came to: its result, or the sentence of its :class:`ImageError`.

    A cache keeps what a function returns, never what it raises: a page's cache of decodes keeps
    this instead, so a file that fails is not decoded again on every rerun.
    """

    value: T | None = None
    error: str | None = None

    @classmethod
    def of(cls, make: Callable[[], T]) -> Attempt[T]:
        """Run ``make``; its result, or the message of the ImageError it raised."""
        try:
            return cls(value=make())
        except ImageError as err:
            return cls(error=str(err))

    def result(self) -> T:
        """The result; the ImageError again when reading failed."""
        if self.error is not None:
            raise ImageError(self.error)
        return self.value
