"""Network targets a firewall test probes from inside lockstep containers, all its own.

``Targets`` makes, and ``close()`` removes: an interface of its own (a bridge without
ports, as a dummy interface would be) holding a link-local alias
(169.254.77.1), a private address (10.213.0.1) and an IPv6 ULA (fd00:213::1) of the host;
a network namespace behind a veth pair (10.213.1.2, plus 169.254.77.9 routed to it) that
stands for a machine beyond the host (a metadata server, the intranet); and TCP listeners
(sockets accepting and closing) bound to exactly those addresses, plus ones on a lockstep
bridge's gateway and on its IPv6 link-local address. Nothing here touches an address the
test did not make, apart from binding on the bridge's own addresses.

``PROBE`` is the code run inside a container: it connects to every target at once (a
thread each) with a short timeout and prints one JSON object {name: "open" | error name},
plus ``ipv6-on-eth0``: "off" when IPv6 is disabled on the container's interface (or
absent), else "on".
"""

from __future__ import annotations

import errno
import json
import socket
import subprocess
import sys
import threading
import time
import uuid

PROBE = r"""
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
def probe(host, port, scope=""):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            if scope:
                s.connect((host, port, 0, socket.if_nametoindex(scope)))
            else:
                s.connect((host, port))
        return "open"
    except OSError as exc:
        return type(exc).__name__
def ipv6_state():
    try:
        return "off" if open("/proc/sys/net/ipv6/conf/eth0/disable_ipv6").read().strip() == "1" \
            else "on"
    except OSError:
        return "off"  # no IPv6 in this kernel or namespace at all
targets = json.loads(sys.argv[1])
with ThreadPoolExecutor(max(1, len(targets))) as pool:  # a dropped one waits its own 2 s
    pending = {n: pool.submit(probe, *t) for n, t in sorted(targets.items())}
found = {n: outcome.result() for n, outcome in pending.items()}
found["ipv6-on-eth0"] = ipv6_state()
print("PROBE " + json.dumps(found), flush=True)
"""

NS_LISTENER = r"""
import socket, sys, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    while True:
        c, _ = s.accept(); c.close()
for p in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=30)


def bridge_link_local(bridge: str) -> str:
    """The IPv6 link-local address the kernel gave ``bridge`` ('' when IPv6 is off there)."""
    out = sh("ip", "-6", "-o", "addr", "show", "dev", bridge, "scope", "link").stdout
    for line in out.splitlines():
        words = line.split()
        if "inet6" in words:
            return words[words.index("inet6") + 1].split("/")[0]
    return ""


class Listener:
    """A TCP socket on (address, port[, scope]) that accepts and closes, in a thread."""

    def __init__(self, host: str, port: int, scope: str = ""):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        address = (host, port, 0, socket.if_nametoindex(scope)) if scope else (host, port)
        deadline = time.monotonic() + 15
        while True:  # a new bridge's fe80:: address stays tentative for a moment (DAD)
            try:
                self.sock.bind(address)
                break
            except OSError as exc:
                if exc.errno != errno.EADDRNOTAVAIL or time.monotonic() > deadline:
                    self.sock.close()
                    raise
                time.sleep(0.3)
        self.sock.listen(16)
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


class Targets:
    """The dummy interface, the namespace beyond the host, and the listeners (see above)."""

    def __init__(self, *, hub_port: int, allowed_port: int, blocked_port: int):
        tag = uuid.uuid4().hex[:6]
        self.dummy, self.ns = f"lsfwd{tag}", f"lsfwn{tag}"
        self.veth_host, self.veth_ns = f"lsfwh{tag}", f"lsfwp{tag}"
        self.hub_port, self.allowed_port, self.blocked_port = hub_port, allowed_port, blocked_port
        self.listeners: list[Listener] = []
        self.ns_proc: subprocess.Popen | None = None
        try:
            self._interfaces()
            for host in ("169.254.77.1", "10.213.0.1", "fd00:213::1"):
                self.listeners.append(Listener(host, hub_port))
            self._namespace_listener()
        except BaseException:
            self.close()
            raise

    def _interfaces(self) -> None:
        # a port-less bridge holds the addresses: this kernel may lack the dummy module
        sh("ip", "link", "add", self.dummy, "type", "bridge")
        sh("ip", "link", "set", self.dummy, "up")
        for cidr in ("169.254.77.1/32", "10.213.0.1/32"):
            sh("ip", "addr", "add", cidr, "dev", self.dummy)
        sh("ip", "-6", "addr", "add", "fd00:213::1/128", "dev", self.dummy, "nodad")
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_ns)
        sh("ip", "link", "set", self.veth_ns, "netns", self.ns)
        sh("ip", "addr", "add", "10.213.1.1/30", "dev", self.veth_host)
        sh("ip", "link", "set", self.veth_host, "up")
        sh("ip", "route", "add", "169.254.77.9/32", "via", "10.213.1.2")
        inside = ("ip", "netns", "exec", self.ns)
        sh(*inside, "ip", "addr", "add", "10.213.1.2/30", "dev", self.veth_ns)
        sh(*inside, "ip", "addr", "add", "169.254.77.9/32", "dev", "lo")
        sh(*inside, "ip", "link", "set", self.veth_ns, "up")
        sh(*inside, "ip", "link", "set", "lo", "up")
        sh(*inside, "ip", "route", "add", "default", "via", "10.213.1.1")

    def _namespace_listener(self) -> None:
        self.ns_proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, sys.executable, "-c", NS_LISTENER,
             str(self.allowed_port), str(self.blocked_port)],
            stdout=subprocess.PIPE, text=True)
        assert self.ns_proc.stdout.readline().strip() == "ready"

    def on_bridge(self, gateway: str, bridge: str) -> str:
        """Listen on the bridge's gateway (the Hub's place) and IPv6 link-local address;
        the latter ('' when the bridge has none)."""
        self.listeners.append(Listener(gateway, self.hub_port))
        link_local = bridge_link_local(bridge)
        if link_local:
            self.listeners.append(Listener(link_local, self.hub_port, scope=bridge))
        return link_local

    def close(self) -> None:
        for listener in self.listeners:
            listener.close()
        if self.ns_proc is not None:
            self.ns_proc.kill()
            self.ns_proc.wait(timeout=10)
        sh("ip", "route", "del", "169.254.77.9/32", check=False)
        for link in (self.dummy, self.veth_host):
            sh("ip", "link", "del", link, check=False)
        sh("ip", "netns", "del", self.ns, check=False)


def probe_args(targets: dict) -> str:
    return json.dumps(targets)


def parse_probe(output: str) -> dict:
    for line in output.splitlines():
        if line.startswith("PROBE "):
            return json.loads(line[len("PROBE "):])
    raise AssertionError(f"no PROBE line in the container's output:\n{output[-2000:]}")
