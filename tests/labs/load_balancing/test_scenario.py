"""load-balancing's variants (labs/load_balancing/scenario.py): what each differs in,
the phases' timing, and nginx's config for each (weights rendered, `nginx -t` passes)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from labs.engine.model.spec import NginxSpec, Upstream
from labs.engine.topology import nginx
from labs.load_balancing import scenario as lb


def render(tmp_path: Path, spec: NginxSpec, servers: list[str]) -> str:
    layout = nginx.NginxLayout(tmp_path / "prefix")
    return nginx.render_config(
        spec, lab="t", variant="v", listen="127.0.0.1:9000", servers=servers, layout=layout
    )


def test_weights_are_rendered_per_server_and_absent_by_default(tmp_path: Path):
    servers = ["127.0.0.1:9001", "127.0.0.1:9002"]
    weighted = render(tmp_path, NginxSpec(upstream=Upstream(weights=(20, 1))), servers)
    assert "server 127.0.0.1:9001 weight=20 max_fails=0" in weighted
    assert "server 127.0.0.1:9002 weight=1 max_fails=0" in weighted
    assert "weight=" not in render(tmp_path, NginxSpec(), servers)


def test_a_variant_gives_one_weight_per_replica():
    with pytest.raises(ValueError, match=r"one weight per api replica \(4\)"):
        replace(lb.ROUND_ROBIN, nginx=NginxSpec(upstream=Upstream(weights=(1, 2, 3))))


def test_fewer_servers_than_weights_take_the_first_weights(tmp_path: Path):
    """nginx -t of every variant renders one server."""
    text = render(tmp_path, lb.WEIGHTED.nginx, ["127.0.0.1:9001"])
    assert "server 127.0.0.1:9001 weight=20 max_fails=1" in text


def test_the_lab_renders_and_passes_nginx_t(tmp_path: Path):
    for variant in lb.VARIANTS:
        layout = nginx.NginxLayout(tmp_path / variant.name)
        servers = [f"127.0.0.1:{9001 + i}" for i in range(lb.REPLICAS)]
        text = nginx.render_config(
            variant.nginx, lab="load-balancing", variant=variant.name,
            listen="127.0.0.1:9000", servers=servers, layout=layout,
        )  # fmt: skip
        nginx.write_config(text, layout)
        nginx.test_config(layout)
        max_fails = 0 if variant is lb.NO_HEALTH_CHECK else 1
        assert f"max_fails={max_fails} fail_timeout=2s" in text, variant.name


def test_the_twins_differ_from_their_variants_only_in_the_fix():
    assert replace(lb.NO_HEALTH_CHECK, name="round-robin", summary=lb.ROUND_ROBIN.summary,
                   twin=lb.ROUND_ROBIN.twin) == replace(
        lb.ROUND_ROBIN, nginx=replace(lb.NGINX, upstream=replace(lb.UPSTREAM, max_fails=0))
    )  # fmt: skip
    assert lb.HASH.nginx.upstream.balance == "hash $arg_key consistent"
    assert lb.HASH_PLAIN.nginx.upstream.balance == "hash $arg_key"
    assert replace(lb.HASH_PLAIN, name="hash", summary=lb.HASH.summary, twin="hash-plain",
                   nginx=lb.HASH.nginx) == lb.HASH  # fmt: skip
    for variant in (lb.LEAST_CONN, lb.P2C):
        assert variant.twin == "round-robin"
        assert replace(variant, nginx=lb.NGINX, name="x", summary="", twin="") == replace(
            lb.ROUND_ROBIN, name="x", summary="", twin=""
        )


def test_the_hash_variants_scale_in_after_the_others_end():
    for variant in (lb.HASH, lb.HASH_PLAIN):
        assert variant.faults[-1] == lb.SCALE_IN and variant.faults[:-1] == lb.FAULTS
        assert variant.load.duration_s == lb.SCALE_IN.at_s + lb.REMOVED_PHASE_S
    assert lb.SCALE_IN.at_s == lb.DURATION_S and lb.SCALE_IN.action == "remove"
    assert {v.load.duration_s for v in lb.VARIANTS if v not in (lb.HASH, lb.HASH_PLAIN)} == {
        lb.DURATION_S
    }


def test_the_back_phase_outlasts_start_up_and_rejoining():
    """The restarted replica has time to answer again in every run (issue 16: it did not
    when the back phase was 4 s and nginx's next try came after the run)."""
    back = lb.DURATION_S - lb.START_AT_S
    assert back >= lb.STARTUP_BUDGET_S + lb.REJOINS_WITHIN_S
    assert lb.REJOINS_WITHIN_S >= lb.FAIL_TIMEOUT_S + 1  # nginx's clock: whole seconds


def test_weighted_variant_down_weights_only_the_slow_replica():
    assert lb.WEIGHTED.nginx.upstream.weights == (20, 20, 20, 1)
    assert {v.nginx.upstream.weights for v in lb.VARIANTS if v is not lb.WEIGHTED} == {()}


def test_every_fault_action_names_a_phase():
    actions = {step.action for v in lb.VARIANTS for step in v.faults}
    assert actions <= set(lb.PHASE_OF_ACTION)
    assert nginx.parse_time(lb.FAIL_TIMEOUT) == lb.FAIL_TIMEOUT_S
