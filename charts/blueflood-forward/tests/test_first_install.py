"""The chart README's install, as written: a numeric tenant (Rackspace tenants are numbers),
credentials that are never silently ignored, and the placeholder image called out where the
user looks (the install notes and the README)."""

import shutil
import subprocess

import pytest
import yaml

from conftest import CHART, assert_binary_accepts, helm_bin, render, values_file


# ---------------------------------------------------------------- numeric tenant


@pytest.mark.parametrize(
    "how, tenant, expected",
    [
        ("values file", 123456, "123456"),
        ("values file", 1234567890, "1234567890"),  # a float64 that prints as 1.23456789e+09
        ("values file", 9007199254740991, "9007199254740991"),  # the largest exact one
        ("values file", "0123", "0123"),
        ("--set", "123456", "123456"),
        ("--set", "1234567890", "1234567890"),
        ("--set-string", "123456", "123456"),
        ("--set-string", "1234567890", "1234567890"),
    ],
)
def test_numeric_tenant_is_written_as_its_digits(tmp_path, how, tenant, expected):
    if how == "values file":
        r = render(values_file(tmp_path, {"forwarder": {"tenant": tenant}}))
    else:
        r = render(flags=(how, f"forwarder.tenant={tenant}"))
    assert r.config["tenant"] == expected
    assert f'tenant = "{expected}"' in r.config_toml
    assert_binary_accepts(r, tmp_path, f"{how} {tenant}")


def test_readme_install_command_renders():
    # The chart README's step 2, as written (from a checkout).
    r = render(
        sets=(
            "forwarder.blueflood=https://blueflood.example.com:19000",
            "forwarder.tenant=123456",
            "auth.enabled=true",
            "auth.existingSecret=blueflood-forward-keystone",
        )
    )
    assert r.config["tenant"] == "123456"
    assert r.config["user_file"] == "/etc/blueflood-forward/keystone/username"


@pytest.mark.parametrize("tenant", [9007199254740992, 12.5, -1, "a/b", "a b", ""])
def test_tenants_that_cannot_be_written_exactly_are_refused(tmp_path, tenant):
    err = render(values_file(tmp_path, {"forwarder": {"tenant": tenant}}), expect_ok=False)
    assert "/forwarder/tenant" in err


# ---------------------------------------------------------------- credentials named, auth off


def test_existing_secret_without_auth_is_refused():
    err = render(sets=("auth.existingSecret=blueflood-forward-keystone",), expect_ok=False)
    assert "auth.existingSecret (blueflood-forward-keystone) is set but auth.enabled is false" in err
    assert "set auth.enabled=true" in err
    err = render(sets=("auth.createSecret=true", "auth.username=u", "auth.apiKey=s3cret-key"), expect_ok=False)
    assert "auth.createSecret is set but auth.enabled is false" in err
    assert "s3cret-key" not in err
    # With authentication on, the same Secret is used.
    r = render(sets=("auth.existingSecret=blueflood-forward-keystone", "auth.enabled=true"))
    assert r.config["key_file"] == "/etc/blueflood-forward/keystone/apiKey"


# ---------------------------------------------------------------- install notes


def notes(tmp_path, *sets):
    """NOTES.txt as `helm install` prints it: `helm template` skips the notes, so a copy of the
    chart renders them into a ConfigMap."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("tests"))
    text = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "NOTES.txt").unlink()
    (chart / "templates" / "_notes.tpl").write_text('{{- define "notes" -}}\n' + text + "\n{{- end -}}\n")
    (chart / "templates" / "notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: |\n"
        '    {{- include "notes" . | nindent 4 }}\n'
    )
    cmd = [helm_bin(), "template", "bf", str(chart), "--namespace", "graphite"]
    for s in sets:
        cmd += ["--set", s]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    (cm,) = [d for d in yaml.safe_load_all(out) if d and d["metadata"]["name"] == "notes"]
    return cm["data"]["notes"]


def test_notes_name_the_placeholder_image_and_how_to_build_it(tmp_path):
    text = notes(tmp_path)
    assert "ghcr.io/blueflood-forward/blueflood-forward:0.1.0 is this chart's placeholder" in text
    assert "podman build --format docker -t registry.example.com/metrics/blueflood-forward:0.1.0 ." in text
    assert "--set image.registry=registry.example.com" in text and "--set image.repository=metrics/blueflood-forward" in text
    for sets in (("image.repository=metrics/blueflood-forward",), ("image.registry=registry.example.com",)):
        assert "placeholder" not in notes(tmp_path / sets[0].split("=")[0], *sets)


def test_notes_show_a_numeric_tenant_as_its_digits(tmp_path):
    assert "(tenant 1234567890)" in notes(tmp_path, "forwarder.tenant=1234567890")


def test_chart_readme_says_which_image_to_set():
    readme = (CHART / "README.md").read_text()
    image = readme.split("\n## Image\n")[1].split("\n## ")[0]
    assert "ghcr.io/blueflood-forward/blueflood-forward" in image and "placeholder" in image
    assert "podman build --format docker -t registry.example.com/metrics/blueflood-forward:0.1.0 ." in image
    for key in ("image.registry", "image.repository", "image.tag"):
        assert f"--set {key}=" in image


def test_notes_say_how_long_the_forwarder_keeps_listening_when_the_pod_stops(tmp_path):
    text = notes(tmp_path, "forwarder.preStopSleepSeconds=7")
    assert "the forwarder keeps listening for 7 s (forwarder.preStopSleepSeconds, its shutdown_delay;" in text
    assert "then drains for up to 25 s" in text
