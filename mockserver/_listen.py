"""The listening sockets of a server: a long kernel queue with a short accept burst, and failures
to accept logged at most once per interval."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from aiohttp import web

from mockserver._config import ACCEPT_BURST, LISTEN_QUEUE
from mockserver._protocol import Throttled

__all__ = ["listen", "throttle_accept_errors"]


async def listen(runner: web.AppRunner, host: str, port: int, *, reuse_port: bool) -> int:
    """Serve ``runner`` on every address of ``host`` (port 0: one free port for all); the port.
    Each socket queues up to LISTEN_QUEUE connections in the kernel while asyncio accepts
    ACCEPT_BURST of them per turn of the loop (it takes both from one ``backlog``): a long
    queue drops no connection attempt in a flood, a short burst keeps the descriptors a flood
    takes at once within FD_RESERVE."""
    family = socket.AF_UNSPEC
    infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    for address_family, kind, proto, _, address in dict.fromkeys(infos):
        sock = socket.socket(address_family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if address_family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], port, *address[2:]))
            port = sock.getsockname()[1]
            await web.SockSite(runner, sock, backlog=ACCEPT_BURST).start()
        except BaseException:
            sock.close()
            raise
        sock.listen(LISTEN_QUEUE)  # asyncio listened with ACCEPT_BURST
    return int(port)


_ACCEPT_FAILED = "socket.accept() out of system resource"


def throttle_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Have ``loop`` log its failures to accept a connection (EMFILE: out of file descriptors,
    ENOBUFS, ...) at most once per interval: asyncio logs each one, with a traceback, up to
    100 times per listening socket per turn of the loop. Other errors go where they went."""
    previous = loop.get_exception_handler()
    if getattr(previous, "throttles_accept", False):
        return
    warn = Throttled("cannot accept connections: %s; retrying every second")

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == _ACCEPT_FAILED:
            warn(context.get("exception"))
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler.throttles_accept = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)
