#!/usr/bin/env python3
"""Run OpenStack's sushy-emulator (sushy-tools 2.2.0) for the ironfence test
lab (tests/support/sushy.rs starts it; run with the lab venv's python).

  --htpasswd FILE USER PASSWORD   first write FILE, an htpasswd with USER's
                                  PASSWORD hashed with bcrypt ($2b$, the only
                                  hash sushy-tools accepts)
  SUSHY_FAKE_POWER_DELAY=N        pin the fake driver's power-transition delay
                                  to N seconds (0: the new PowerState is seen
                                  on the next GET; N: applied at int(now)+N,
                                  i.e. N-1..N s after the request)
  SUSHY_FAKE_POWER_DELAY=random   (or unset) the stock behaviour: a random
                                  1..11 s per transition
Every other argument goes to sushy-emulator unchanged (--config FILE ...).
"""
import os
import sys
import types


def main():
    args = sys.argv[1:]
    if "--htpasswd" in args:
        at = args.index("--htpasswd")
        path, user, password = args[at + 1:at + 4]
        del args[at:at + 4]
        import bcrypt
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
        with open(path, "w") as f:
            f.write(f"{user}:{hashed}\n")

    from sushy_tools.emulator import main as emulator
    from sushy_tools.emulator.resources.systems import fakedriver

    delay = os.environ.get("SUSHY_FAKE_POWER_DELAY", "random")
    if delay != "random":
        seconds = int(delay)
        # the fake driver draws random.randint(1, 11) per power transition
        fakedriver.random = types.SimpleNamespace(randint=lambda a, b: seconds)

    sys.argv = ["sushy-emulator"] + args
    return emulator.main()


if __name__ == "__main__":
    sys.exit(main())
