"""A lint finding names the file, the object and the field, so a person can go straight to the fix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Finding:
    """One problem in one object."""

    file: str
    object: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.object}: {self.field}: {self.message}"


__all__ = ["Finding"]
