"""Tests for ``simseq fit`` through click's CliRunner."""

import json
import math

import pytest
from click.testing import CliRunner

from simseq.cli import main


def run(*args):
    return CliRunner().invoke(main, ["fit", *args])


def weibull_survival(t, shape, scale):
    return math.exp(-((t / scale) ** shape))


def test_median_and_shape_json():
    result = run("weibull", "--median", "10.3", "--shape", "1.3", "--json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["family"] == "weibull"
    assert d["params"]["shape"] == 1.3
    # median of a Weibull is scale * log(2)^(1/shape)
    assert d["params"]["scale"] * math.log(2) ** (1 / 1.3) == pytest.approx(10.3, rel=1e-9)
    assert d["median"] == pytest.approx(10.3, rel=1e-9)
    assert d["method"] == "median+fixed"
    assert d["scale"] == "log(-log S)"


def test_median_and_landmark_table():
    result = run("weibull", "--median", "10.3", "--landmark", "12:0.45")
    assert result.exit_code == 0, result.output
    assert "exact (2 points, 2 params)" in result.stdout
    assert "shape" in result.stdout and "scale" in result.stdout
    assert "0.4500" in result.stdout


def test_median_and_landmark_json_hits_both_points():
    result = run("weibull", "--median", "10.3", "--landmark", "12:0.45", "--json")
    assert result.exit_code == 0, result.output
    p = json.loads(result.stdout)["params"]
    assert weibull_survival(10.3, p["shape"], p["scale"]) == pytest.approx(0.5, abs=1e-10)
    assert weibull_survival(12.0, p["shape"], p["scale"]) == pytest.approx(0.45, abs=1e-10)


def test_quartiles_and_fix():
    result = run("lnorm", "--quartiles", "4.2:18", "--json")
    assert result.exit_code == 0, result.output
    result = run("lnorm", "--median", "10.3", "--fix", "sdlog=0.9", "--json")
    assert result.exit_code == 0, result.output
    p = json.loads(result.stdout)["params"]
    assert math.exp(p["meanlog"]) == pytest.approx(10.3, rel=1e-12)


def test_median_alone_is_refused():
    result = run("weibull", "--median", "10.3")
    assert result.exit_code != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "--shape" in lines[0] and "second point" in lines[0]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["weibul", "--median", "10.3"], "weibul"),
        (["weibull", "--median", "10.3", "--landmark", "12-0.45"], "malformed --landmark"),
        (["weibull", "--median", "10.3", "--landmark", "12:abc"], "'abc' is not a number"),
        (["weibull", "--median", "10.3", "--landmark", "12:1.2"], "between 0 and 1"),
        (["weibull", "--median", "10.3", "--landmark", "12:0.6"], "S(12)=0.6"),
        (["weibull", "--quartiles", "18:4.2"], "Q1=18, Q3=4.2"),
        (["weibull", "--median", "-2", "--shape", "1"], "median must be > 0"),
        (["weibull", "--median", "nan", "--shape", "1"], "finite"),
        (["lnorm", "--median", "10.3", "--shape", "1"], "--fix sdlog=VALUE"),
        (["lnorm", "--median", "10.3", "--fix", "sdlog"], "malformed --fix"),
        (["weibull", "--median", "10", "--shape", "1", "--fix", "shape=2"], "use one"),
        (["weibull"], "nothing to fit"),
    ],
)
def test_bad_input_exits_nonzero_with_one_line(args, fragment):
    result = run(*args)
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.output
