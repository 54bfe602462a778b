"""Backends by name: local and Modal behind the one Backend interface."""

from __future__ import annotations

from worker.backends.base import Backend


def create_backend(name: str, **settings: object) -> Backend:
    """The backend by name; heavy imports happen here, not at module import."""
    if name == "local":
        from worker.backends.local import LocalBackend

        return LocalBackend(**settings)  # type: ignore[arg-type]
    if name == "modal":
        from worker.modal.fanout import ModalBackend

        return ModalBackend(**settings)  # type: ignore[arg-type]
    raise ValueError(f"unknown backend {name!r}; choose local or modal")

