"""Free loopback ports for tests, handed out once across the test processes of
a machine.

Ports come from 20000-29999: below the kernel's ephemeral range
(net.ipv4.ip_local_port_range, 32768-60999 by default), so no outgoing
connection of any process can take one between the pick and the bind of the
server it is for, as it could a port found free by binding port 0. Test
processes running at once (ctest -j 2) share the next port through a locked
file, so two of them never get the same one (until the range wraps around).

    python3 hack/testbin/ports.py N   # N ports, one per line
"""
import fcntl
import os
import socket
import sys
import tempfile

PORT_LO, PORT_HI = 20000, 29999
STATE = os.path.join(tempfile.gettempdir(), f"gantry-test-ports.{os.getuid()}")


def free_ports(count, host="127.0.0.1"):
    out = []
    with open(STATE, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
        f.seek(0)
        text = f.read().strip()
        nxt = int(text) if text.isdigit() and PORT_LO <= int(text) <= PORT_HI else PORT_LO
        for _ in range(PORT_HI - PORT_LO + 1):
            if len(out) == count:
                break
            port, nxt = nxt, (nxt + 1 if nxt < PORT_HI else PORT_LO)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, port))  # no SO_REUSEADDR: a port in TIME_WAIT is passed over too
                except OSError:
                    continue
            out.append(port)
        f.seek(0)
        f.truncate()
        f.write(str(nxt))
    if len(out) < count:
        raise RuntimeError(f"no {count} free ports on {host} in {PORT_LO}-{PORT_HI}")
    return out


def free_port(host="127.0.0.1"):
    return free_ports(1, host)[0]


if __name__ == "__main__":
    for p in free_ports(int(sys.argv[1]) if len(sys.argv) > 1 else 1):
        print(p)
