"""The "dns" part (labs/engine/topology/dns.py): a real dnsmasq answering from a hosts
file it re-reads on SIGHUP, the small A-record lookup, and nginx's mount namespace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labs.engine.model.spec import LoadSpec, NginxSpec, ServiceSpec, Variant
from labs.engine.runtime.processes import pid_alive
from labs.engine.topology import compose_file, dns, nginx

SERVER = ("127.0.0.19", 5353)
"""Not the lab's 127.0.0.9:53 (a lab run may hold it), and no root needed."""


def answer(name: str, expected: str | None) -> str | None:
    deadline = time.monotonic() + 5
    while True:
        got = dns.lookup(name, server=SERVER)
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_dnsmasq_answers_from_its_hosts_file_and_follows_a_rewrite(tmp_path):
    hosts = tmp_path / "hosts"
    dns.write_hosts(hosts, {dns.name_of("api"): "127.0.0.2"})
    assert hosts.read_text() == "127.0.0.2 api.lab\n"
    argv = dns.dnsmasq_argv(hosts, *SERVER)
    assert "--local=/lab/" in argv and "--no-resolv" in argv and "--local-ttl=1" in argv
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        assert answer("api.lab", "127.0.0.2") == "127.0.0.2"
        assert answer("nope.lab", "") == "", "a local name it does not know: NXDOMAIN"
        dns.write_hosts(hosts, {dns.name_of("api"): "127.0.0.3"})
        server.send_signal(signal.SIGHUP)
        assert answer("api.lab", "127.0.0.3") == "127.0.0.3"
    finally:
        server.terminate()
        server.wait(5)
    assert dns.lookup("api.lab", timeout_s=0.2, server=SERVER) is None, "nobody answers"


@pytest.mark.skipif(os.geteuid() != 0, reason="a mount namespace needs root")
def test_a_namespaced_process_sees_its_own_resolv_conf_and_the_host_keeps_its_own(tmp_path):
    before = Path("/etc/resolv.conf").read_text()
    resolv = tmp_path / "resolv.conf"
    dns.write_resolv_conf(resolv)
    argv = dns.namespaced(["cat", "/etc/resolv.conf"], resolv)
    seen = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout
    assert seen.startswith(f"nameserver {dns.DNS_ADDRESS}\n")
    assert Path("/etc/resolv.conf").read_text() == before


def test_nginx_resolves_by_name_at_start_or_through_a_resolver(tmp_path):
    layout = nginx.NginxLayout(tmp_path)
    common = {"lab": "t", "variant": "v", "listen": "127.0.0.1:9000", "layout": layout}
    once = nginx.render_config(NginxSpec(dns="upstream"), servers=["api.lab:9001"], **common)
    assert "server api.lab:9001" in once and "resolver " not in once
    assert "proxy_pass http://backend;" in once
    spec = NginxSpec(dns="resolver", dns_valid="2s")
    running = nginx.render_config(spec, servers=["api-1:8000"], resolver="127.0.0.11", **common)
    assert "resolver 127.0.0.11 valid=2s ipv6=off;" in running
    assert "set $backend_url http://api-1:8000;" in running
    assert "proxy_pass $backend_url;" in running and "proxy_pass http://backend" not in running


def test_on_compose_the_dns_part_is_dockers_own_no_container():
    variant = Variant(
        name="v",
        summary="by name",
        nginx=NginxSpec(dns="upstream"),
        services=(ServiceSpec("api"),),
        load=LoadSpec("trivial.py", users=1, spawn_rate=1, duration_s=1),
        parts=("dns",),
    )
    document, servers = compose_file.render(variant, nginx_conf=Path("/x"), labels={})
    assert compose_file.services_of(variant) == ["api-1", "nginx"] == list(document["services"])
    assert servers == ["api-1:8000"], "nginx finds the replica by its name"


RUNNER = """
import sys, time
from pathlib import Path
from labs.engine.runtime.processes import ProcessGroup
from labs.engine.topology import dns
group = ProcessGroup("test-dns-orphan", Path(sys.argv[1]) / "logs")
child = group.start("dns", dns.dnsmasq_argv(Path(sys.argv[1]) / "hosts", "127.0.0.19", 5353))
print(child.pid, flush=True)
time.sleep(60)
"""


def test_dnsmasq_dies_with_a_sigkilled_runner(tmp_path):
    """In --no-daemon mode dnsmasq keeps the runner's user (a switch to nobody would
    clear the parent-death signal), so a killed runner does not leave it holding the
    lab's DNS address."""
    dns.write_hosts(tmp_path / "hosts", {dns.name_of("api"): "127.0.0.2"})
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    pid = int(runner.stdout.readline())
    try:
        assert answer("api.lab", "127.0.0.2") == "127.0.0.2", "dnsmasq is serving"
        runner.kill()
        runner.wait(5)
        deadline = time.monotonic() + 3
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(pid), "dnsmasq outlived the runner that was killed"
    finally:
        runner.kill()
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
