#!/usr/bin/python3
# Minimal syslog sink for the sandboxed sbd daemon: binds an AF_UNIX datagram
# socket (the sandbox's own /dev/log, inside its private mount namespace) and
# appends every message, prefixed with the wall-clock time, to a log file.
# Usage: syslog_sink.py SOCKPATH LOGFILE
import os
import socket
import sys
import time

path, logfile = sys.argv[1], sys.argv[2]
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
with open(logfile, "a", buffering=1) as f:
    while True:
        data = s.recv(65536)
        f.write("%.3f %s\n" % (time.time(), data.decode(errors="replace").rstrip("\n\0")))
