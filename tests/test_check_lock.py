"""tools/check_lock.py's verdicts, on canned requirements and canned pip answers (no network).

`make check-lock` must pass where the only missing wheels are the documented gap (PyTorch,
torchvision and argon2-cffi-bindings on macOS x86-64) and fail on any other missing wheel.
"""

import subprocess
import sys

from packaging.requirements import Requirement

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import check_lock  # noqa: E402

CANNED = [Requirement(line) for line in (
    "numpy==2.3.5", "torch==2.14.1", "torchvision==0.29.1", "argon2-cffi-bindings==26.2.0",
    'nvidia-cublas-cu12==12.8.4.1 ; platform_system == "Linux"', 'pywinpty==3.0.2 ; sys_platform == "win32"')]


class FakePip:
    """Stands in for subprocess.run: fails, as pip does, on the first asked pin it has no wheel for."""

    def __init__(self, no_wheel=()):
        self.no_wheel, self.asked = set(no_wheel), []

    def __call__(self, command, **kwargs):
        listing = command[command.index("-r") + 1]
        with open(listing) as f:
            pins = f.read().split()
        self.asked.append(pins)
        missing = [pin for pin in pins if pin.split("==")[0] in self.no_wheel]
        stderr = f"ERROR: No matching distribution found for {missing[0]}\n" if missing else ""
        return subprocess.CompletedProcess(command, int(bool(missing)), "", stderr)


def run_main(monkeypatch, targets, pip):
    monkeypatch.setattr(check_lock, "locked_requirements", lambda: CANNED)
    return check_lock.main(targets, run=pip)


def test_documented_gap_on_intel_macs_is_reported_not_failed(monkeypatch, capsys):
    pip = FakePip(no_wheel={"torch", "torchvision", "argon2-cffi-bindings"})
    assert run_main(monkeypatch, ["macos-x86_64"], pip) == 0
    assert pip.asked == [["numpy==2.3.5"]]  # the expected gap is not asked about; markers drop the rest
    out = capsys.readouterr().out
    assert "expected" in out and "argon2-cffi-bindings==26.2.0, torch==2.14.1, torchvision==0.29.1" in out


def test_any_other_missing_wheel_on_intel_macs_still_fails(monkeypatch, capsys):
    assert run_main(monkeypatch, ["macos-x86_64"], FakePip(no_wheel={"torch", "numpy"})) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "numpy==2.3.5" in out


def test_torch_missing_elsewhere_fails(monkeypatch, capsys):
    pip = FakePip(no_wheel={"torch"})
    assert run_main(monkeypatch, ["macos-arm64"], pip) == 1
    assert "torch==2.14.1" in pip.asked[0]
    assert "FAIL" in capsys.readouterr().out


def test_every_target_ok_exits_0_and_markers_are_evaluated_per_target(monkeypatch, capsys):
    pip = FakePip()
    assert run_main(monkeypatch, [], pip) == 0
    asked = dict(zip(check_lock.TARGETS, pip.asked))
    assert "nvidia-cublas-cu12==12.8.4.1" in asked["linux-x86_64"]
    assert "pywinpty==3.0.2" in asked["windows-amd64"] and "pywinpty==3.0.2" not in asked["linux-x86_64"]
    assert capsys.readouterr().out.count(" ok ") == 3  # the fourth, macos-x86_64, is "expected"


def test_unknown_target_is_refused_with_the_known_ones(monkeypatch, capsys):
    assert run_main(monkeypatch, ["macos-ppc"], FakePip()) == 2
    assert "linux-x86_64" in capsys.readouterr().err
