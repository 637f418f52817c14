import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from labs.engine.errors import LabError
from labs.engine.model.catalog import all_labs
from labs.engine.model.spec import NginxSpec, Proxy, Upstream
from labs.engine.topology import nginx
from labs.engine.topology.ports import free_ports, is_listening


def render(tmp_path: Path, spec: NginxSpec, servers=("127.0.0.1:9001",)) -> str:
    layout = nginx.NginxLayout(tmp_path / "prefix")
    text = nginx.render_config(
        spec, lab="t", variant="v", listen="127.0.0.1:9000", servers=list(servers), layout=layout
    )
    nginx.write_config(text, layout)
    return text


def test_keepalive_pool_needs_http11_and_empty_connection_header(tmp_path):
    text = render(tmp_path, NginxSpec(upstream=Upstream(keepalive=32, keepalive_timeout="60s")))
    assert "keepalive 32;" in text
    assert "keepalive_timeout 60s;" in text
    assert "proxy_http_version 1.1;" in text
    assert 'proxy_set_header Connection "";' in text


def test_without_pool_there_is_no_keepalive_directive(tmp_path):
    text = render(tmp_path, NginxSpec(upstream=Upstream(keepalive=0)))
    assert "keepalive " not in text.split("upstream backend", 1)[1].split("}", 1)[0]
    assert "proxy_http_version" not in text


def test_servers_balance_and_proxy_settings_are_rendered(tmp_path):
    spec = NginxSpec(
        upstream=Upstream(balance="least_conn", max_fails=3, fail_timeout="5s"),
        proxy=Proxy(next_upstream="off", read_timeout="7s"),
        extra_location=("add_header X-Lab yes",),
    )
    text = render(tmp_path, spec, servers=("127.0.0.1:9001", "127.0.0.1:9002"))
    assert "least_conn;" in text
    assert "server 127.0.0.1:9001 max_fails=3 fail_timeout=5s;" in text
    assert "server 127.0.0.1:9002 max_fails=3 fail_timeout=5s;" in text
    assert "proxy_next_upstream off;" in text
    assert "proxy_read_timeout 7s;" in text
    assert "add_header X-Lab yes;" in text
    assert "listen 127.0.0.1:9000;" in text


def test_admin_and_metrics_are_not_proxied(tmp_path):
    text = render(tmp_path, NginxSpec())
    assert "location ~* ^/(admin(/|$)|metrics(/|$)) { return 404; }" in text


@pytest.mark.parametrize(
    "lab_variant",
    [(lab, v) for lab in all_labs() for v in lab.variants],
    ids=lambda lv: f"{lv[0].name}/{lv[1].name}",
)
def test_every_variant_config_passes_nginx_t(tmp_path, lab_variant):
    lab, variant = lab_variant
    layout = nginx.NginxLayout(tmp_path / "prefix")
    text = nginx.render_config(
        variant.nginx, lab=lab.name, variant=variant.name, listen="127.0.0.1:9000",
        servers=["127.0.0.1:9001"], layout=layout,
    )  # fmt: skip
    nginx.write_config(text, layout)
    nginx.test_config(layout)
    assert "listen 127.0.0.1:" in text, "must bind loopback only"


def test_nginx_t_failure_is_a_lab_error_with_nginx_message(tmp_path):
    render(tmp_path, NginxSpec(upstream=Upstream(keepalive_timeout="0.9s"), proxy=Proxy()))
    # keepalive_timeout only appears with a pool; force one with an invalid time.
    layout = nginx.NginxLayout(tmp_path / "bad")
    text = nginx.render_config(
        NginxSpec(upstream=Upstream(keepalive=8, keepalive_timeout="0.9s")),
        lab="t", variant="v", listen="127.0.0.1:9000", servers=["127.0.0.1:9001"], layout=layout,
    )  # fmt: skip
    nginx.write_config(text, layout)
    with pytest.raises(LabError) as rejected:
        nginx.test_config(layout)
    # nginx's two lines stay two lines, under ours: never merged into one.
    ours, emerg, failed = str(rejected.value).splitlines()
    assert ours == f"nginx rejected the config {layout.conf}:"
    assert emerg.startswith("  nginx: [emerg] ") and "invalid value" in emerg
    assert emerg.endswith(f"{layout.conf}:{text.splitlines().index(emerg_line(text)) + 1}")
    assert failed == f"  nginx: configuration file {layout.conf} test failed"


def emerg_line(config: str) -> str:
    return next(line for line in config.splitlines() if "keepalive_timeout 0.9s" in line)


def test_nginx_rejection_without_output_says_the_exit_status():
    assert nginx.rejected("/x/nginx.conf", "\n", 1) == (
        "nginx rejected the config /x/nginx.conf:\n  exit status 1"
    )


def test_missing_nginx_override_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("LAB_NGINX", "/nonexistent/nginx")
    with pytest.raises(LabError, match="not an executable nginx"):
        nginx.find_nginx()


ERROR_LOG = """\
2026/11/21 23:40:01 [error] 12#12: *5 upstream prematurely closed connection while reading response header from upstream, client: 127.0.0.1
2026/11/21 23:40:01 [error] 12#12: *7 recv() failed (104: Connection reset by peer) while reading response header from upstream, client: 127.0.0.1
2026/11/21 23:40:02 [error] 12#12: *8 recv() failed (104: Connection reset by peer) while reading response header from upstream
2026/11/21 23:40:03 [error] 12#12: *9 connect() failed (111: Connection refused) while connecting to upstream
2026/11/21 23:40:04 [error] 12#12: *10 no live upstreams while connecting to upstream
2026/11/21 23:40:05 [error] 12#12: *11 upstream timed out (110: Connection timed out) while reading response header
2026/11/21 23:40:06 [error] 12#12: *12 something nobody has seen before
2026/11/21 23:40:07 [notice] 12#12: signal process started
a continuation line that is not an entry
"""  # noqa: E501


def test_error_log_is_counted_by_kind():
    assert nginx.parse_error_log(ERROR_LOG) == {
        "connection_refused": 1,
        "connection_reset": 2,
        "no_live_upstreams": 1,
        "other": 1,
        "upstream_prematurely_closed": 1,
        "upstream_timed_out": 1,
    }


def test_empty_error_log_has_no_kinds():
    assert nginx.parse_error_log("") == {}


def test_access_log_counts_statuses_and_upstream_retries():
    lines = "\n".join(
        [
            '{"t":1.0,"status":200,"upstream_status":"200"}',
            '{"t":1.1,"status":200,"upstream_status":"502, 200"}',
            '{"t":1.2,"status":502,"upstream_status":"502"}',
            '{"t":1.3,"status":404,"upstream_status":""}',
            "not json",
        ]
    )
    summary = nginx.parse_access_log(lines)
    assert summary.requests == 4
    assert summary.status == {"200": 2, "404": 1, "502": 1}
    assert summary.upstream_attempts == {"200": 2, "502": 2}
    assert summary.retried == 1


RATE_LIMIT = NginxSpec(
    http_directives=(
        'map $http_x_api_key $limit_key { "" $binary_remote_addr; default $http_x_api_key; }',
        "limit_req_zone $limit_key zone=tenants:1m rate=1r/m",
    ),
    extra_location=(
        "limit_req zone=tenants",
        "limit_req_status 429",
        "error_page 429 = @too_many_requests",
    ),
    retry_after_s=7,
)


def test_http_directives_render_in_the_http_block_and_blocks_as_written(tmp_path):
    text = render(tmp_path, RATE_LIMIT)
    http_block = text.split("http {", 1)[1].split("server {", 1)[0]
    assert "limit_req_zone $limit_key zone=tenants:1m rate=1r/m;" in http_block
    assert "default $http_x_api_key; }\n" in http_block, "a block gets no trailing semicolon"
    assert "limit_req_status 429;" in text.split("location / {", 1)[1]


def test_nginx_own_429_is_problem_json_with_retry_after_on_real_nginx(tmp_path):
    """limit_req rejects before proxying, so no backend is needed for the 429 itself."""
    listen_port, backend_port = free_ports(2)
    layout = nginx.NginxLayout(tmp_path / "prefix")
    text = nginx.render_config(
        RATE_LIMIT, lab="t", variant="v", listen=f"127.0.0.1:{listen_port}",
        servers=[f"127.0.0.1:{backend_port}"], layout=layout,
    )  # fmt: skip
    nginx.write_config(text, layout)
    process = subprocess.Popen(nginx.nginx_argv(layout), stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not is_listening(listen_port) and time.monotonic() < deadline:
            time.sleep(0.02)
        url = f"http://127.0.0.1:{listen_port}/work"
        statuses = []
        for _ in range(3):
            request = urllib.request.Request(url, headers={"X-API-Key": "noisy"})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    statuses.append((response.status, response.headers, response.read()))
            except urllib.error.HTTPError as error:
                statuses.append((error.code, error.headers, error.read()))
        # the first goes upstream (nothing listens: 502); the rest are over 1 r/min
        assert [s for s, _, _ in statuses] == [502, 429, 429]
        _, headers, body = statuses[1]
        assert headers["Retry-After"] == "7"
        assert headers["Content-Type"] == "application/problem+json"
        assert json.loads(body) == {
            "type": "about:blank", "title": "Too Many Requests", "status": 429,
            "detail": "rate limited by nginx (limit_req)",
        }  # fmt: skip
        # another tenant (another API key) has its own budget
        other = urllib.request.Request(url, headers={"X-API-Key": "quiet"})
        with pytest.raises(urllib.error.HTTPError) as first_of_quiet:
            urllib.request.urlopen(other, timeout=5)
        assert first_of_quiet.value.code == 502
    finally:
        process.terminate()
        process.wait(timeout=10)
