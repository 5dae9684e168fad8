"""Check that requirements.txt installs on each platform the book supports, as far as pip can tell.

pip's ``--platform`` option picks wheels for another platform but evaluates
environment markers for the machine it runs on. So this script evaluates each line's
marker for the target itself, then asks pip whether every remaining pin has a wheel
for that platform and Python 3.11 (``--only-binary=:all: --no-deps --dry-run``; pip 25
or newer reads the wheels' metadata without downloading them):

    python tools/check_lock.py                       # every target
    python tools/check_lock.py windows-amd64         # one target

It cannot tell whether a wheel works there (nothing is imported), nor whether a
package needs a dependency on that platform that the lock lacks; for the latter, a
resolver that evaluates markers for another platform helps (see how_to_use.md).

macOS on Intel is a known gap: PyTorch, torchvision and argon2-cffi-bindings publish no
wheel of the locked versions for it (how_to_use.md and CONTRIBUTING.md say so). Those
pins are left out there and the target is reported as "expected unsupported", not as a
failure; any other pin without a wheel, on any target, still fails the check (exit 1).
"""

import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "3.11.7"  # soupsieve 4.1 needs 3.11.5 or newer

#: target: (pip --platform values, the marker environment of such a machine)
TARGETS = {
    "linux-x86_64": (
        [f"manylinux_2_{minor}_x86_64" for minor in range(17, 37)] + ["manylinux2014_x86_64", "linux_x86_64"],
        {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix"}),
    "macos-arm64": (
        ["macosx_14_0_arm64"],  # pip adds the older macOS versions and universal2 itself
        {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64", "os_name": "posix"}),
    "macos-x86_64": (
        ["macosx_14_0_x86_64"],
        {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "x86_64", "os_name": "posix"}),
    "windows-amd64": (
        ["win_amd64"],
        {"sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64", "os_name": "nt"}),
}

#: target: the pins known to have no wheel there (documented), reported but not failed
EXPECTED_MISSING = {"macos-x86_64": frozenset({"torch", "torchvision", "argon2-cffi-bindings"})}


def locked_requirements(path: Path = ROOT / "requirements.txt") -> list[Requirement]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("#")]


def pins_for(target: str, requirements=None) -> list[str]:
    """The ``name==version`` lines that install on ``target`` (markers evaluated for it)."""
    environment = {"python_version": PYTHON.rsplit(".", 1)[0], "python_full_version": PYTHON,
                   "implementation_name": "cpython", "platform_python_implementation": "CPython",
                   **TARGETS[target][1]}
    return [f"{req.name}{req.specifier}" for req in requirements or locked_requirements()
            if req.marker is None or req.marker.evaluate(environment)]


def check(target: str, requirements=None, run=subprocess.run) -> tuple[str, str]:
    """Ask pip about ``target``'s pins: ``("ok" | "expected" | "FAIL", report)``.

    "expected": every pin has a wheel except those EXPECTED_MISSING names for the target,
    which are not asked about. ``run`` is subprocess.run (tests pass a stand-in).
    """
    platforms, _ = TARGETS[target]
    expected = EXPECTED_MISSING.get(target, frozenset())
    pins, skipped = [], []
    for pin in pins_for(target, requirements):
        (skipped if Requirement(pin).name.lower() in expected else pins).append(pin)
    with tempfile.TemporaryDirectory() as scratch:
        listing = Path(scratch) / "requirements.txt"
        listing.write_text("\n".join(pins) + "\n")
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
                   "--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp",
                   "--target", str(Path(scratch) / "target"), "--quiet", "-r", str(listing)]
        for platform in platforms:
            command += ["--platform", platform]
        result = run(command, capture_output=True, text=True)
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines()
                  if line.startswith(("ERROR: No matching", "ERROR: Cannot install"))]
        return "FAIL", f"{len(pins)} pins asked; " + (" / ".join(errors) or result.stderr[-500:])
    if skipped:
        return "expected", (f"{len(pins)} pins have a wheel; no wheel expected for {', '.join(sorted(skipped))}"
                            " (a known gap, documented in how_to_use.md)")
    return "ok", f"{len(pins)} pins; every one has a wheel"


def main(argv: list[str], run=subprocess.run) -> int:
    """Exit status 1 if any target has a pin without a wheel, other than the expected ones."""
    unknown = [target for target in argv if target not in TARGETS]
    if unknown:
        print(f"unknown target {', '.join(unknown)}; expected one of: {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    failed = 0
    for target in argv or list(TARGETS):
        status, report = check(target, run=run)
        failed += status == "FAIL"
        print(f"{target:14} {status:8} {report}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
