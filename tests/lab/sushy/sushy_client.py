#!/usr/bin/env python3
"""Drive a Redfish service with OpenStack's `sushy` client library, for
tests/redfish_sim_interop.rs (our simulator as the server, sushy as a client
nobody on this project wrote).

usage: sushy_client.py URL USER PASSWORD VERIFY AUTH SYSTEM OP...
  URL       https://127.0.0.1:PORT
  VERIFY    a CA file (PEM) to verify the server with, or `insecure`
  AUTH      session | basic | auto (sushy's SessionOrBasicAuth, its default)
  SYSTEM    the system's path, /redfish/v1/Systems/ID
  OP        state               PowerState, as sushy maps it, lower case (on / off)
            allowed             the reset types sushy finds allowed
            reset:TYPE          system.reset_system(ResetType(TYPE))
            wait:STATE:SECONDS  refresh until PowerState is STATE (on/off)
Prints one JSON object per line: {"op", "ok", "value"} or {"op", "ok": false,
"error": exception class, "status": HTTP code or null, "message"}. The session
(if any) is closed at the end ({"op": "close"}). Exit 0 unless the arguments
or the first connection are wrong (exit 2 / 3).
"""
import json
import sys
import time

import sushy
from sushy import auth as sushy_auth
from sushy import exceptions


def emit(**kw):
    print(json.dumps(kw), flush=True)


def fail(op, exc):
    emit(op=op, ok=False, error=type(exc).__name__,
         status=getattr(exc, "status_code", None), message=str(exc)[:500])


def power(system):
    """PowerState in lower case: on, off, powering on, ... (None: unknown)."""
    state = system.power_state
    return None if state is None else str(state.value).lower()


def main(argv):
    if len(argv) < 7:
        print(__doc__, file=sys.stderr)
        return 2
    url, user, password, verify, auth_kind, system_path = argv[1:7]
    ops = argv[7:]
    verify = False if verify == "insecure" else verify
    auth = {"session": sushy_auth.SessionAuth,
            "basic": sushy_auth.BasicAuth,
            "auto": sushy_auth.SessionOrBasicAuth}[auth_kind](user, password)
    try:
        # no GET retries on 5xx (sushy's default is 10 x 3 s)
        conn = sushy.Sushy(url, auth=auth, verify=verify,
                           server_side_retries=0, read_timeout=30)
    except Exception as exc:  # noqa: BLE001 - reported, then exit
        fail("connect", exc)
        return 3
    emit(op="connect", ok=True, value={
        "session": auth.get_session_resource_id()
        if hasattr(auth, "get_session_resource_id") else None,
        "uuid": conn.uuid, "product": conn.product})
    system = None
    for op in ops:
        try:
            if system is None:
                system = conn.get_system(system_path)
            if op == "state":
                system.refresh()
                emit(op=op, ok=True, value=power(system))
            elif op == "allowed":
                values = sorted(v.value for v in system.get_allowed_reset_system_values())
                emit(op=op, ok=True, value=values)
            elif op.startswith("reset:"):
                system.reset_system(sushy.ResetType(op.split(":", 1)[1]))
                emit(op=op, ok=True, value=None)
            elif op.startswith("wait:"):
                _, want, seconds = op.split(":")
                deadline = time.monotonic() + float(seconds)
                while True:
                    system.refresh()
                    now = power(system)
                    if now == want or time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
                emit(op=op, ok=now == want, value=now)
            else:
                emit(op=op, ok=False, error="UnknownOp", status=None, message=op)
        except exceptions.SushyError as exc:
            fail(op, exc)
    try:
        auth.close()
        emit(op="close", ok=True, value=None)
    except Exception as exc:  # noqa: BLE001
        fail("close", exc)
    conn._auth = None  # closed already; keep __del__ quiet
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
