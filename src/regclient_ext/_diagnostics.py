"""Counts of live Go objects, for leak checks in tests and in production."""

from __future__ import annotations

from . import _native

__all__ = ["address_is_internal", "diagnostics"]


def diagnostics() -> dict[str, int | bool]:
    """Return whether the Go runtime is loaded and how many Go clients and operations are alive.

    ``clients`` counts Clients that have made a call and are not closed.
    ``operations`` counts calls started and not yet released: each call
    from its start until its result has been read. It drops to 0 shortly
    after every call has returned. ``go_max_procs`` is
    the Go runtime's current GOMAXPROCS (0 before it is loaded): 1 while
    calls come one at a time, the runtime's default while they overlap.
    ``spin_budget_us`` is how long a lone synchronous call polls for its
    result before it sleeps (0: never). ``spin_waits`` counts the calls
    that polled, and ``spin_waits_finished`` those whose result arrived
    while they polled. After a fast call, Go polls for the next request
    for a fifth of that time: ``submit_polls`` counts those polls, and
    ``submit_polls_finished`` those that found a request.
    """
    clients, operations, procs = _native.stats()
    spin_budget_us, spin_waits, spin_waits_finished, submit_polls, submit_polls_finished = _native.spin_stats()
    return {
        "go_loaded": _native.loaded(),
        "clients": clients,
        "operations": operations,
        "go_max_procs": procs,
        "spin_budget_us": spin_budget_us,
        "spin_waits": spin_waits,
        "spin_waits_finished": spin_waits_finished,
        "submit_polls": submit_polls,
        "submit_polls_finished": submit_polls_finished,
    }


def address_is_internal(address: str) -> bool:
    """Return whether block_private_networks refuses an IP address, without connecting to it."""
    import json

    from ._default import shared_client

    client = shared_client()
    meta, _ = client._decode(client._call(json.dumps({"kind": "classify_address", "image": address}).encode()))
    return bool(meta["internal"])
