"""pyghmi_bmc.py - pyghmi's fake BMC as a test peer, on loopback only.

Run with the lab venv's python (tests/lab/pyghmi-bmc.sh does that):

    pyghmi_bmc.py [--port PORT] [--user NAME] [--password PW]
                  [--power on|off] [--log FILE]

- Binds 127.0.0.1 only (an AF_INET6 socket bound to ::ffff:127.0.0.1, as
  pyghmi's server code expects v4-mapped peers); PORT 0 (the default) takes
  a free port from the kernel, so there is no race with other tests.
- Once the socket is bound it prints one line, `READY <port>`, on stdout.
- The machine is pyghmi's FakeBmc: the power state lives in memory and starts
  `--power` (default on). Every Chassis Control it obeys is appended to FILE
  (`--log`) as `<unix-seconds> <what>` (`power off`, `power on`,
  `power cycle`, `power reset`, `power shutdown`), so a test can see the
  order of what the BMC was told, not only the end state.
- Runs until killed (the tests stop it by PID).

What pyghmi 1.6.19's server side offers (pyghmi/ipmi/private/serversession.py):
cipher suite 3 only (HMAC-SHA1 / HMAC-SHA1-96 / AES-CBC-128), whatever the
client proposes; Get Channel Cipher Suites always answers one record, suite 3.
An unknown user name or a wrong RAKP 3 HMAC gets no answer at all.
"""

import argparse
import sys
import time

import pyghmi.ipmi.bmc as bmc
from pyghmi.cmd.fakebmc import FakeBmc


class LoopbackFakeBmc(FakeBmc):
    def __init__(self, authdata, port, power, log):
        # Skip FakeBmc.__init__: it binds every address ('::').
        bmc.Bmc.__init__(self, authdata, port, address="::ffff:127.0.0.1")
        # pyghmi routes session packets by bmc_handlers[client][self.port],
        # looked up with the socket's real port: with port 0 it must be the
        # port the kernel chose.
        self.port = self.serversocket.getsockname()[1]
        self.powerstate = power
        self.bootdevice = "default"
        self.logfile = log

    def record(self, what):
        if self.logfile:
            with open(self.logfile, "a", encoding="ascii") as f:
                f.write("%.6f %s\n" % (time.time(), what))

    def power_off(self):
        self.powerstate = "off"
        self.record("power off")

    def power_on(self):
        self.powerstate = "on"
        self.record("power on")

    def power_cycle(self):
        # A real machine goes off and comes back; in memory it ends up on.
        self.record("power cycle")
        self.powerstate = "on"

    def power_reset(self):
        self.record("power reset")

    def power_shutdown(self):
        self.powerstate = "off"
        self.record("power shutdown")

    def cold_reset(self):
        # FakeBmc exits on a BMC cold reset; a test peer stays up.
        self.record("bmc cold reset")
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--user", default="admin")
    ap.add_argument("--password", default="secret")
    ap.add_argument("--power", choices=["on", "off"], default="on")
    ap.add_argument("--log", default=None)
    args = ap.parse_args()
    server = LoopbackFakeBmc(
        {args.user: args.password}, args.port, args.power, args.log
    )
    print("READY %d" % server.port, flush=True)
    server.listen()


if __name__ == "__main__":
    sys.exit(main())
