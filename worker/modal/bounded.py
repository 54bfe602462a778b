"""Running modal's coroutines bounded, from any thread: every network step has a time limit.

With a token but no network, modal's own calls retry for about 57 s; nothing here waits longer than asked.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Coroutine

from worker.core.cancel import CancelToken

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from worker.modal.credentials import Credentials

CHECK_TIMEOUT_CAP_S = 10.0  # no credential or app check ever waits longer than this
CLOSE_GRACE_S = 2.0  # closing a modal client never waits longer than this


def cap_timeout(timeout_s: float, cap: float = CHECK_TIMEOUT_CAP_S) -> float:
    return max(0.1, min(float(timeout_s), cap))


def run_bounded(make_coro: Callable[[], Coroutine[Any, Any, Any]], timeout_s: float, cancel: CancelToken | None) -> Any:
    """Run a coroutine on a private event loop in a private thread, at most `timeout_s` (then TimeoutError).

    Works from any thread, including one with a running loop. `cancel` stops it at once (Cancelled).
    The thread is joined with a small grace; if modal's cleanup hangs past it, it is left behind (daemon).
    """
    from worker.core.async_loops import run_cancellable

    return run_cancellable(make_coro, cancel, timeout_s=timeout_s, in_thread=True, join_timeout_s=timeout_s + 2.0,
                           thread_name="modal-check")


def server_host(server_url: str) -> str:
    from urllib.parse import urlparse

    first = server_url.split(",")[0]
    return urlparse(first).netloc or first


async def open_client(server_url: str, credentials: "Credentials"):
    """An explicit, opened modal client (never modal's cached global one, which read the config at import),
    with a token or OAuth credentials (worker.modal.credentials.Credentials)."""
    client = new_client(server_url, credentials)
    try:
        await client.__aenter__()
    except BaseException:  # a time limit or cancel mid-connect: modal's connect attempt would go on retrying
        await close_client(client)
        raise
    return client


def new_client(server_url: str, credentials: "Credentials"):
    """A modal Client (not yet opened) for these credentials."""
    import modal
    from modal_proto import api_pb2

    oauth = credentials.oauth
    if oauth is None:
        return modal.Client(server_url, api_pb2.CLIENT_TYPE_CLIENT,
                            (credentials.token_id, credentials.token_secret.reveal()))
    from modal.client import _OAuthCredentials  # what modal 1.6 builds from MODAL_OAUTH_* itself

    return modal.Client(
        server_url, api_pb2.CLIENT_TYPE_CLIENT, None,
        oauth_credentials=_OAuthCredentials(
            refresh_token=oauth.refresh_token.reveal(),
            client_id=oauth.client_id,
            client_secret=oauth.client_secret.reveal() if oauth.client_secret else None,
            jwt_key=oauth.jwt_key.reveal() if oauth.jwt_key else None,
        ),
    )


async def close_client(client) -> None:
    """Close a modal client, stopping its pending connect attempt; never raises, waits at most CLOSE_GRACE_S."""
    import asyncio

    try:
        await asyncio.wait_for(client.__aexit__(None, None, None), CLOSE_GRACE_S)
    except (Exception, asyncio.CancelledError) as exc:  # a client that cannot close cleanly is dropped all the same
        log.debug("a modal client did not close cleanly: %s", type(exc).__name__)
