"""A remote MLflow tracking server: a short reachability probe, bounded HTTP retries, one-line reasons.

MLflow's own client retries a failing request 7 times with exponential back-off and waits up to 120 s
for each answer (MLFLOW_HTTP_REQUEST_MAX_RETRIES, _BACKOFF_FACTOR, _TIMEOUT): about 4 minutes before
one call gives up. A training job cannot wait that long per call, so seqbench shortens the defaults
(an explicit setting in the environment wins) and probes the server once, within a few seconds,
before a job touches any output.
"""

from __future__ import annotations

import os
import time

# MLflow's HTTP settings seqbench sets unless the environment already does: a call to a dead server
# fails within seconds (connection refused) or ~35 s (a server that accepts but never answers)
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
PROBE_TIMEOUT = 4.0  # seconds per attempt; two attempts
SERVER_HINT = ("start it (e.g. `mlflow server --host 127.0.0.1 --port 5000`) or correct MLFLOW_TRACKING_URI; "
               "unset MLFLOW_TRACKING_URI to use the project's own store mlflow.db")


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def use_short_retries() -> None:
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


def reason(error: BaseException) -> str:
    """A short, one-line cause of a failed MLflow call (connection refused, timeout, ...)."""
    chain, seen = [], set()
    node: BaseException | None = error
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        chain.append(node)
        node = node.__cause__ or node.__context__
    text = " ".join(f"{type(e).__name__}: {e}" for e in chain)
    lowered = text.lower()
    for needle, short in (("connection refused", "connection refused"),
                          ("timed out", "no answer in time"), ("timeout", "no answer in time"),
                          ("name or service not known", "host name not found"),
                          ("nodename nor servname", "host name not found"),
                          ("no route to host", "no route to host"),
                          ("remotedisconnected", "the server closed the connection"),
                          ("connection aborted", "the server closed the connection"),
                          ("connection reset", "the server closed the connection")):
        if needle in lowered:
            return short
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return first[:200]


def is_connection_problem(error: BaseException) -> bool:
    """True when the server could not be reached at all (as opposed to an answer refusing the call)."""
    import requests

    node: BaseException | None = error
    seen = set()
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if isinstance(node, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                             requests.exceptions.RetryError)):
            return True
        node = node.__cause__ or node.__context__
    return False


def unreachable_message(uri: str, why: str, seconds: float | None = None) -> str:
    after = "" if seconds is None else f", after {seconds:.1f} s"
    return f"MLflow tracking server {uri} is not reachable ({why}{after}): {SERVER_HINT}"


def probe(uri: str) -> str | None:
    """None if the server at `uri` answers an MLflow API call within seconds, else what is wrong (one line)."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    started = time.monotonic()
    try:
        response = http_request(get_default_host_creds(uri), "/api/2.0/mlflow/experiments/search", "POST",
                                max_retries=1, backoff_factor=1, backoff_jitter=0.5, timeout=PROBE_TIMEOUT,
                                raise_on_status=False, json={"max_results": 1})
    except Exception as error:
        return unreachable_message(uri, reason(error), time.monotonic() - started)
    if response.status_code in (401, 403):
        return (f"MLflow tracking server {uri} refused the credentials (HTTP {response.status_code}): "
                "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN")
    if response.status_code >= 500 or response.status_code == 404:
        return (f"MLflow tracking server {uri} answered HTTP {response.status_code} to an API call "
                f"(is it an MLflow server, and is the URI's path right?): {SERVER_HINT}")
    return None
