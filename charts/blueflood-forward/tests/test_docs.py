"""The docs say what the chart does: the README's probe block, the parameter table's defaults,
Chart.yaml's sources."""

import json
import re

import yaml

from conftest import CHART, REPO

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def test_readme_probes_are_the_charts(renders):
    readme = (REPO / "README.md").read_text()
    block = re.search(r"^Kubernetes probes.*?```yaml\n(.*?)```", readme, re.S | re.M).group(1)
    documented = yaml.safe_load(block)
    r = renders["standalone-default"]
    fwd = r.container("blueflood-forward")
    (admin,) = [p["containerPort"] for p in fwd["ports"] if p["name"] == "admin"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        chart = json.loads(json.dumps(fwd[probe]))
        chart["httpGet"]["port"] = admin
        assert documented[probe] == chart, probe
    assert documented["terminationGracePeriodSeconds"] == r.pod["terminationGracePeriodSeconds"]


def lookup(values, dotted):
    for part in dotted.split("."):
        values = values[part]
    return values


def test_parameter_table_shows_the_defaults():
    """readme-generator shows `{}` / `[]` for a parameter documented with [object] / [array]:
    a non-empty default must be documented by its leaves instead. (It cannot show an array of
    objects: those say their default in the description.)"""
    table = (CHART / "README.md").read_text().split("\n## Parameters\n")[1]
    rows = re.findall(r"^\| `([^`]+)` +\| (.*?) +\| `(.*)` +\|$", table, re.M)
    assert len(rows) > 100
    wrong = []
    for name, description, shown in rows:
        default = lookup(VALUES, name)
        if shown in ("{}", "[]") and default:
            if not (isinstance(default, list) and "default" in description):
                wrong.append(name)
    assert not wrong, f"shown empty, but values.yaml has a default: {wrong}"


def test_chart_sources_are_this_project():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    for url in chart.get("sources", []) + ([chart["home"]] if "home" in chart else []):
        assert "blueflood-forward" in url, f"{url} is not this project's source"
