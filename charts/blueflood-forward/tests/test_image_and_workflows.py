"""Invariants of the Dockerfile, .dockerignore and the GitHub workflows, and their agreement with
the chart (user, ports, versions)."""

import pathlib
import re
import tomllib

import pytest
import yaml

from conftest import CHART, REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def instructions():
    """(instruction, argument) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages():
    result, current = [], None
    for ins, arg in instructions():
        if ins == "FROM":
            current = {"from": arg, "body": []}
            result.append(current)
        elif current is not None:
            current["body"].append((ins, arg))
    return result


def test_runtime_stage_is_distroless_nonroot():
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE, re.M))
    assert args["RUNTIME_IMAGE"] == "gcr.io/distroless/cc-debian12:nonroot"
    final = stages()[-1]
    assert final["from"] == "${RUNTIME_IMAGE} AS runtime"
    body = final["body"]
    assert ("USER", "65532:65532") in body
    assert not [a for i, a in body if i == "RUN"], "the runtime stage has no shell to RUN with"
    (entry,) = [a for i, a in body if i == "ENTRYPOINT"]
    assert entry == '["/usr/local/bin/blueflood-forward"]', "exec form: no shell at run time"


def test_exposed_ports_match_the_chart():
    (expose,) = [a for i, a in instructions() if i == "EXPOSE"]
    ports = set(expose.split())
    assert {"2003", "2004", "8080"} <= ports
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    f = values["forwarder"]
    assert {str(f["pickle"]["port"]), str(f["line"]["port"]), str(f["adminPort"])} <= ports


def test_user_matches_the_chart():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["forwarder"]["securityContext"]["runAsUser"] == 65532
    assert values["podSecurityContext"]["runAsUser"] == 65532


def test_oci_labels():
    labels = " ".join(a for i, a in stages()[-1]["body"] if i == "LABEL")
    for key in ("title", "description", "licenses", "version", "revision"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in labels


def test_dependencies_are_cached_before_the_sources():
    builder = [s for s in stages() if s["from"].endswith("AS builder")][0]["body"]
    runs = [(n, i, a) for n, (i, a) in enumerate(builder)]
    cook = [n for n, i, a in runs if i == "RUN" and "cargo chef cook" in a]
    copy_all = [n for n, i, a in runs if i == "COPY" and a == ". ."]
    build = [n for n, i, a in runs if i == "RUN" and "cargo build --release --locked" in a]
    assert cook and copy_all and build and cook[0] < copy_all[0] < build[0]
    assert not [a for i, a in instructions() if i == "ADD"]


def test_build_stages_run_on_the_build_platform():
    chef = stages()[0]
    assert chef["from"].startswith("--platform=$BUILDPLATFORM ")
    assert "TARGETARCH" in DOCKERFILE and "CARGO_BUILD_TARGET" in DOCKERFILE


def test_dockerignore_keeps_the_context_small():
    lines = [l.strip() for l in (REPO / ".dockerignore").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert lines[0] == "*", "ignore everything, then allow what the build needs"
    assert {"!Cargo.toml", "!Cargo.lock", "!src/"} <= set(lines)
    assert "**/target/" in lines and ".git/" in lines


def test_chart_app_version_is_the_crate_version():
    crate = tomllib.loads((REPO / "Cargo.toml").read_text())["package"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == crate


# ---------------------------------------------------------------- workflows


def load(path):
    return yaml.safe_load(path.read_text())


def on(doc):
    return doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit(path):
    for line in path.read_text().splitlines():
        m = re.search(r"uses:\s*(\S+)(.*)$", line)
        if not m:
            continue
        ref, comment = m.groups()
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{path.name}: {ref} is not pinned by commit"
        assert re.fullmatch(r"\s*# v\d+(\.\d+)*", comment), f"{path.name}: {ref} has no version comment"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege(path):
    doc = load(path)
    assert doc["permissions"] == {}, "nothing by default; each job asks for what it needs"
    for name, job in doc["jobs"].items():
        perms = job["permissions"]
        assert perms.get("contents") == "read", name
        assert set(perms.values()) <= {"read", "write"}
        writes = {k for k, v in perms.items() if v == "write"}
        if path.name == "release.yml":
            assert writes <= {"packages"}, name
        else:
            assert not writes, name
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, name


def test_ci_runs_every_check():
    doc = load(REPO / ".github/workflows/ci.yml")
    runs = " ".join(s.get("run", "") for j in doc["jobs"].values() for s in j["steps"])
    for cmd in ("cargo fmt --all -- --check", "cargo clippy --locked --all-targets -- -D warnings",
                "cargo test --locked --all-targets", "bash scripts/check-deploy.sh"):
        assert cmd in runs, cmd
    fuzz_jobs = [n for n in doc["jobs"] if "fuzz" in n]
    assert bool(fuzz_jobs) == (REPO / "fuzz").is_dir(), "a fuzz smoke job exactly when fuzz/ exists"


def test_release_on_tags_only():
    doc = load(REPO / ".github/workflows/release.yml")
    trigger = on(doc)
    assert set(trigger) == {"push"} and set(trigger["push"]) == {"tags"}
    image = doc["jobs"]["image"]
    build = [s for s in image["steps"] if s.get("id") == "build"][0]
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert build["with"]["push"] is True
    assert not [s for j in doc["jobs"].values() for s in j["steps"] if "cache" in str(s.get("with", {}))], \
        "a release is built without caches"
    chart = " ".join(s.get("run", "") for s in doc["jobs"]["chart"]["steps"])
    assert "package charts/blueflood-forward" in chart and "push" in chart
