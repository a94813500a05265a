"""forwarder.config and the chart values that become forwarder keys, against values.schema.json
(generated from src/config/keys.rs): what the forwarder would refuse at start is refused at
`helm install`, instead of a pod that exits 64 at every restart; what the schema allows, the
forwarder takes."""

import json
import re

import pytest

from conftest import CHART, assert_binary_accepts, check_config, render, values_file

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
CONFIG = SCHEMA["properties"]["forwarder"]["properties"]["config"]


def config_values(tmp_path, config, name="values.yaml"):
    return values_file(tmp_path, {"forwarder": {"config": config}}, name)


def managed_keys():
    text = (CHART / "templates" / "_helpers.tpl").read_text()
    body = re.search(r'define "blueflood-forward\.managedKeys" -\}\}\n(.*?)\n\{\{- end', text, re.S).group(1)
    return set(re.findall(r'"([a-z_]+)"', body))


MANAGED = managed_keys()
# Managed keys without a default in the schema: a value of the right type for each.
TYPED = {"line_endpoint": "tcp:2003", "udp_endpoint": "udp:2003", "secret_name": "s", "spool_dir": "/x"}


def samples(prop):
    """The values the schema shows as fine: the default, the examples, each word of an enum."""
    out = [prop["default"]] if "default" in prop else []
    for v in prop.get("examples", []):
        out.append(v)
    for branch in [prop, *prop.get("anyOf", [])]:
        out += [w for w in branch.get("enum", []) if w not in out]
    return out


def test_every_sample_of_every_settable_key_passes_the_schema_and_the_forwarder(tmp_path):
    keys = {k: samples(p) for k, p in CONFIG["properties"].items() if k not in MANAGED}
    assert {"buffer_bytes", "compression", "retry_initial", "ready_high_water"} <= set(keys)
    rounds = max(len(s) for s in keys.values())
    for i in range(rounds):
        config = {k: s[i] for k, s in keys.items() if len(s) > i}
        r = render(config_values(tmp_path, config, f"round{i}.yaml"))
        cfg = r.config
        for k, v in config.items():
            assert cfg[k] == v, (k, v, cfg[k])
        (tmp_path / f"round{i}").mkdir()
        assert_binary_accepts(r, tmp_path / f"round{i}", f"round {i}: {config}")


@pytest.mark.parametrize("key", sorted(MANAGED & set(CONFIG["properties"])))
def test_keys_the_chart_sets_are_refused_even_well_typed(tmp_path, key):
    value = (samples(CONFIG["properties"][key]) or [TYPED.get(key)])[0]
    assert value is not None, f"no value for {key}: add one to TYPED"
    # The schema lets the value through (it is checked first); the chart refuses the key.
    err = render(config_values(tmp_path, {key: value}), expect_ok=False)
    assert f"forwarder.config.{key}: this key is set by the chart" in err
    err = render(config_values(tmp_path, {f"{key}_file": "/x"}, "file.yaml"), expect_ok=False)
    assert f"forwarder.config.{key}_file: this key is set by the chart" in err


# Each of these values used to render into config.toml and crash-loop the pod (exit 64).
REFUSED = [
    ("compression", "fast"),
    ("concurrency", 0),
    ("concurrency", 257),
    ("compression_level", 10),
    ("buffer_bytes", "128Mi"),  # Kubernetes' unit, not the forwarder's (MiB)
    ("buffer_bytes", "1.5MiB"),
    ("buffer_bytes", 1000),
    ("max_frame_bytes", 4294967296),
    ("max_connections", 0),
    ("retry_initial", 0),
    ("retry_initial", "0"),
    ("idle_timeout", -1),
    ("ready_high_water", 0.1),
    ("ready_high_water", 1.5),
    ("ready_high_water", "0.1"),
    ("overwrite_collection_timestamp", "maybe"),
    ("concurency", 8),  # a typo
    ("buffer_bytes_file", ""),
]


@pytest.mark.parametrize("key, value", REFUSED)
def test_values_the_forwarder_refuses_are_refused_at_install(tmp_path, key, value):
    err = render(config_values(tmp_path, {key: value}), expect_ok=False)
    assert "/forwarder/config" in err and key in err, err
    # What the schema spares the user: without it the pod would exit 64 naming the key.
    r = render(config_values(tmp_path, {key: value}), flags=("--skip-schema-validation",))
    p = check_config(r, tmp_path)
    assert p.returncode == 64 and p.stdout.startswith("FAILED  config:") and key in p.stdout, (p.stdout, p.stderr)


@pytest.mark.parametrize("key", ["admin_token", "key"])
def test_secrets_are_refused_in_forwarder_config(tmp_path, key):
    err = render(config_values(tmp_path, {key: "s3cret"}), expect_ok=False)
    assert f"additional properties '{key}' not allowed" in err
    assert "s3cret" not in err
    # As a file name they are fine (admin_token_file: see the admin token tests).
    (files,) = CONFIG["patternProperties"]
    assert re.fullmatch(files, f"{key}_file")


def test_admin_token_would_have_landed_in_the_configmap(tmp_path):
    r = render(config_values(tmp_path, {"admin_token": "s3cret"}), flags=("--skip-schema-validation",))
    assert 'admin_token = "s3cret"' in r.config_toml, "why the schema refuses it"


@pytest.mark.parametrize(
    "sets, expected",
    [
        # --set makes 0.5 a string: seconds and fractions take strings too.
        ("forwarder.config.retry_initial=0.5", "0.5"),
        ("forwarder.config.ready_high_water=0.95", "0.95"),
        ("forwarder.config.buffer_bytes=128MiB", "128MiB"),
        ("forwarder.config.concurrency=8", 8),
    ],
)
def test_set_on_the_command_line(tmp_path, sets, expected):
    r = render(sets=(sets,))
    assert r.config[sets.split("=")[0].split(".")[-1]] == expected
    assert_binary_accepts(r, tmp_path, sets)


@pytest.mark.parametrize(
    "sets, path, key",
    [
        ("forwarder.interval=0", "/forwarder/interval", "interval"),
        ("forwarder.shutdownTimeout=0", "/forwarder/shutdownTimeout", "shutdown_timeout"),
        ("forwarder.ttl=2147483647", "/forwarder/ttl", "ttl"),
        ("spool.threshold=0", "/spool/threshold", "spool_threshold"),
        ("forwarder.logLevel=", "/forwarder/logLevel", "log_level"),
    ],
)
def test_chart_values_the_forwarder_refuses_are_refused_at_install(tmp_path, sets, path, key):
    assert path in render(sets=(sets,), expect_ok=False)
    r = render(sets=(sets,), flags=("--skip-schema-validation",))
    p = check_config(r, tmp_path)
    assert p.returncode == 64 and key in p.stdout, (p.stdout, p.stderr)
