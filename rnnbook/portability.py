"""Portable validation: notebook outputs that hold on any reader's CPU.

Other CPUs run other kernels (vector width, FMA contraction, MKL and oneDNN code
paths), so float round-off differs between machines and training amplifies it. The
book's contract (``CONTRIBUTING.md``) is that what nbval compares holds everywhere:

* round-off is printed against its bound (:func:`rnnbook.checks.below`), never digit
  by digit;
* a cell whose printed numbers come from training or measurement declares a numeric
  tolerance in its metadata, under the key ``"nbval-tolerance"``::

      {"nbval-tolerance": {"rtol": 0.02, "atol": 0.01,
                           "reason": "validation perplexity after 8 epochs of training"}}

  Its text is still compared exactly (runs of spaces count as one space, so a
  right-aligned column may gain or lose a digit); each number must satisfy
  ``|test - reference| <= atol + rtol * |reference|``. Cells without the key are
  compared exactly, as strict nbval does;
* CI validates under a *foreign* CPU configuration (:func:`foreign_cpu_config`), so
  an output that depends on the CPU fails in CI before it fails for a reader.

This module is also the pytest plugin that teaches nbval the tolerance (loaded with
``-p rnnbook.portability``, see ``pyproject.toml``) and a small command line:
``python -m rnnbook.portability foreign-env`` prints the foreign configuration as
``NAME=value`` words for ``env``; ``python -m rnnbook.portability describe`` says
which configuration is in effect.
"""

import math
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass

#: The cell-metadata key that declares a numeric tolerance.
TOLERANCE_KEY = "nbval-tolerance"
#: Keys a tolerance may hold; ``reason`` (what varies between CPUs) and ``kind`` are required.
TOLERANCE_FIELDS = {"rtol", "atol", "reason", "kind"}
#: What kind of quantity a tolerance cell prints, which decides how its tolerance is sized
#: (CONTRIBUTING.md): ``round-off`` of a stable computation (float64 measurements, short
#: float32 products) differs only below the printed digits, so its tolerance is tight
#: (rtol at most 0.02, no atol: one rounded last digit); ``chaotic``, a quantity that a chaotic forward pass or
#: training run amplifies from round-off, is printed at the precision it has (an order of
#: magnitude, a bound, a median over seeds); ``training``, a result of a training
#: trajectory, read as a median over seeds where a claim rests on it, with a margin the
#: spread justifies. Timings are not compared at all (``nbval-ignore-output``).
TOLERANCE_KINDS = ("round-off", "chaotic", "training")

#: The environment variables that select CPU kernels: PyTorch's own vectorised kernels,
#: MKL's code branch (matrix products), and oneDNN's instruction set (nn.LSTM on x86).
CPU_CONFIG_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")
#: oneDNN's instruction-set limit one level below each native ATen capability.
ONEDNN_BELOW = {"AVX512": "AVX2", "AVX512_VNNI": "AVX2", "AVX2": "SSE41"}
X86 = {"x86_64", "amd64", "AMD64", "i386", "i686"}


def foreign_cpu_config(native: str | None = None, machine: str | None = None) -> dict:
    """The CPU configuration that ``make test`` validates under, for this machine.

    Each variable selects a code path the machine does not run by default: PyTorch's
    kernels without explicit vector instructions (``ATEN_CPU_CAPABILITY=default``),
    MKL's conditional-numerical-reproducibility branch for any x86 CPU
    (``MKL_CBWR=COMPATIBLE``), and oneDNN limited to one instruction set below the
    machine's (AVX2 on an AVX-512 CPU, SSE4.1 otherwise). The committed outputs are
    produced natively, so every CI run compares two different sets of kernels. On a
    CPU that is not x86, only PyTorch's own kernels are switched. ``native`` is the
    ATen capability (asked of a fresh interpreter when None), ``machine`` what
    ``platform.machine()`` reports.
    """
    machine = platform.machine() if machine is None else machine
    if machine not in X86:
        return {"ATEN_CPU_CAPABILITY": "default"}
    native = native_capability() if native is None else native
    return {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE",
            "ONEDNN_MAX_CPU_ISA": ONEDNN_BELOW.get(native, "SSE41")}


#: oneDNN's instruction sets from the newest down, as ``ONEDNN_MAX_CPU_ISA`` names them.
ONEDNN_LADDER = ("AVX512_CORE", "AVX2", "AVX", "SSE41")


def foreign_cpu_configs(native: str | None = None, machine: str | None = None) -> list[dict]:
    """Every foreign configuration of this machine: the set ``make compare`` runs and
    ``make test`` rotates among (:func:`rotated_cpu_config`).

    On x86 they combine PyTorch's kernel paths (``default``, the scalar path; ``AVX2``;
    ``AVX512`` where it is native), MKL's branches (``COMPATIBLE``, ``AVX2``, ``AVX512``)
    and oneDNN one and two instruction sets below the machine's, so that each
    configuration differs from the native kernels in at least two of the three
    libraries. The first is :func:`foreign_cpu_config`. On a CPU that is not x86 only
    PyTorch's kernels can be switched, and the set has that one configuration.
    """
    machine = platform.machine() if machine is None else machine
    first = foreign_cpu_config(native, machine)
    if machine not in X86:
        return [first]
    native = native_capability() if native is None else native
    one_below = ONEDNN_BELOW.get(native, "SSE41")
    two_below = ONEDNN_LADDER[min(ONEDNN_LADDER.index(one_below) + 1, len(ONEDNN_LADDER) - 1)]
    if native.startswith("AVX512"):
        return [first,
                {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": two_below},
                {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": one_below},
                {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": two_below},
                {"ATEN_CPU_CAPABILITY": "avx512", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": two_below},
                {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX512", "ONEDNN_MAX_CPU_ISA": one_below}]
    return [first,
            {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": two_below},
            {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": two_below}]


def rotation_cpu_configs(native: str | None = None, machine: str | None = None) -> list[dict]:
    """The foreign configurations ``make test`` rotates among: those that leave MKL on
    a vectorised branch (``MKL_CBWR`` other than ``COMPATIBLE``), when there are any,
    else all of them.

    Chosen for cost, as measured: MKL's ``COMPATIBLE`` branch makes the many small
    matrix products of the from-scratch chapters about twice as slow (chapter 2 took
    95 s under it against 43-50 s without, two notebooks at a time on a 2-core AMD
    EPYC), and a whole validation under it leaves no room in the suite's ten minutes.
    The chosen configurations still differ from the native kernels in at least two of
    the three libraries; ``make compare CPU_CONFIG=all`` runs every configuration,
    the ``COMPATIBLE`` ones included.
    """
    configs = foreign_cpu_configs(native, machine)
    cheaper = [config for config in configs if config.get("MKL_CBWR", "").upper() not in ("", "COMPATIBLE")]
    return cheaper or configs


def rotated_cpu_config(key: str, native: str | None = None, machine: str | None = None) -> tuple[int, dict]:
    """The foreign configuration ``make test`` validates under for ``key`` (a commit
    hash): ``(index, configuration)``, with ``index`` its place in
    :func:`foreign_cpu_configs`, chosen among :func:`rotation_cpu_configs` by the key,
    so that successive landings meet each of them while each run stays one validation."""
    digits = "".join(ch for ch in key.lower() if ch in "0123456789abcdef")
    if not digits:
        raise ValueError(f"expected a commit hash (hexadecimal digits) to choose a configuration, got {key!r}")
    rotation = rotation_cpu_configs(native, machine)
    config = rotation[int(digits, 16) % len(rotation)]
    return foreign_cpu_configs(native, machine).index(config), config


def config_words(config: dict) -> str:
    """A configuration as ``NAME=value`` words for ``env``."""
    return " ".join(f"{key}={value}" for key, value in config.items())


#: A number as printed by Python: optional sign, digits with an optional fraction, or a
#: fraction alone, optional exponent. It must not continue a word (``float32``, ``l0``,
#: ``W_1``) or another number; ``1.9x`` holds the number 1.9. Avoid thousands
#: separators in tolerance cells: ``80,412`` reads as two numbers.
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
SPACES = re.compile(r"[ \t]+")


@dataclass(frozen=True)
class Tolerance:
    """``|test - reference| <= atol + rtol * |reference|`` for every printed number."""

    rtol: float = 0.0
    atol: float = 0.0
    reason: str = ""

    def __post_init__(self):
        if not (self.rtol >= 0 and self.atol >= 0) or (self.rtol == 0 and self.atol == 0):
            raise ValueError(f"a tolerance needs rtol >= 0 and atol >= 0, not both zero; "
                             f"got rtol={self.rtol!r}, atol={self.atol!r}")

    def allows(self, reference: float, test: float) -> bool:
        return abs(test - reference) <= self.atol + self.rtol * abs(reference) + 1e-12 * abs(reference)


def cell_tolerance(metadata) -> Tolerance | None:
    """The :class:`Tolerance` a cell's metadata declares, or None for exact comparison.

    Raises ``ValueError`` for a malformed declaration (unknown keys, no reason,
    negative or missing bounds), so a typo cannot silently make a cell exact or lax.
    """
    declared = metadata.get(TOLERANCE_KEY) if metadata else None
    if declared is None:
        return None
    if not isinstance(declared, dict) or set(declared) - TOLERANCE_FIELDS:
        raise ValueError(f"{TOLERANCE_KEY} must be a mapping with keys from {sorted(TOLERANCE_FIELDS)}, "
                         f"got {declared!r}")
    if not str(declared.get("reason", "")).strip():
        raise ValueError(f"{TOLERANCE_KEY} needs a 'reason' saying what varies between CPUs, got {declared!r}")
    if declared.get("kind") not in TOLERANCE_KINDS:
        raise ValueError(f"{TOLERANCE_KEY} needs a 'kind', one of {TOLERANCE_KINDS}, got {declared!r}")
    if declared["kind"] == "round-off" and (float(declared.get("rtol", 0.0)) > 0.02 or float(declared.get("atol", 0.0)) > 0):
        raise ValueError(f"{TOLERANCE_KEY}: round-off of a stable computation moves only a rounded last digit; "
                         f"its tolerance is at most rtol=0.02 without atol, got {declared!r}")
    return Tolerance(float(declared.get("rtol", 0.0)), float(declared.get("atol", 0.0)), declared["reason"])


def split_numbers(text: str) -> tuple[list[str], list[float]]:
    """``text`` cut into the words between numbers (spaces collapsed) and the numbers.

    ``split_numbers("loss 0.25 after 10 steps")`` is
    ``(["loss ", " after ", " steps"], [0.25, 10.0])``: there is always one more word
    than numbers.
    """
    words, numbers, position = [], [], 0
    for match in NUMBER.finditer(text):
        words.append(SPACES.sub(" ", text[position:match.start()]))
        numbers.append(float(match.group(0)))
        position = match.end()
    words.append(SPACES.sub(" ", text[position:]))
    return words, numbers


def compare_text(reference: str, test: str, tolerance: Tolerance | None) -> str | None:
    """None when ``test`` matches ``reference`` under ``tolerance``, else why not.

    With ``tolerance=None`` the texts must be equal. Otherwise the words between
    numbers must be equal (runs of spaces count as one) and each number must lie
    within the tolerance of the reference's number in the same place.
    """
    if reference == test:
        return None
    if tolerance is None:
        return "the texts differ and the cell declares no tolerance"
    ref_words, ref_numbers = split_numbers(reference)
    test_words, test_numbers = split_numbers(test)
    if ref_words != test_words:
        for index, (ours, theirs) in enumerate(zip(ref_words, test_words)):
            if ours != theirs:
                return f"the text around number {index + 1} differs: {ours!r} != {theirs!r}"
        return f"the texts print {len(ref_numbers)} and {len(test_numbers)} numbers"
    for index, (ours, theirs) in enumerate(zip(ref_numbers, test_numbers)):
        if not tolerance.allows(ours, theirs):
            allowed = tolerance.atol + tolerance.rtol * abs(ours)
            return (f"number {index + 1} ({ref_words[index].strip()[-40:]!r} ...) is {theirs:g}, "
                    f"reference {ours:g}: |difference| {abs(theirs - ours):.3g} > allowed {allowed:.3g} "
                    f"(rtol {tolerance.rtol:g}, atol {tolerance.atol:g})")
    return None


def deviation(reference: str, test: str) -> tuple[float, float] | None:
    """Largest relative and absolute difference between the numbers of two texts.

    None when the words between the numbers differ (no tolerance can reconcile
    them); ``(0.0, 0.0)`` for equal texts. The relative difference of a number whose
    reference is 0 counts as infinite unless both are 0.
    """
    ref_words, ref_numbers = split_numbers(reference)
    test_words, test_numbers = split_numbers(test)
    if ref_words != test_words:
        return None
    worst_rel = worst_abs = 0.0
    for ours, theirs in zip(ref_numbers, test_numbers):
        difference = abs(theirs - ours)
        worst_abs = max(worst_abs, difference)
        if difference:
            worst_rel = max(worst_rel, difference / abs(ours) if ours else math.inf)
    return worst_rel, worst_abs


# --- comparing whole cell outputs -------------------------------------------------

IMAGE_PREFIX = "image/"


def comparable_texts(outputs) -> list[tuple[str, str]]:
    """``(label, text)`` for every text nbval compares in a list of cell outputs.

    Streams are merged by name (as nbval does); rich outputs contribute each
    non-image MIME type. Images are not compared by nbval and are left out.
    """
    texts, streams = [], {}
    for output in outputs:
        if output.get("output_type") == "stream":
            name = output.get("name", "stdout")
            if name not in streams:
                streams[name] = len(texts)
                texts.append([name, ""])
            texts[streams[name]][1] += "".join(output.get("text", ""))
        elif output.get("output_type") in ("execute_result", "display_data"):
            for mime, value in output.get("data", {}).items():
                if not mime.startswith(IMAGE_PREFIX):
                    texts.append([mime, value if isinstance(value, str) else "".join(value)])
        elif output.get("output_type") == "error":
            texts.append(["error", f"{output.get('ename')}: {output.get('evalue')}"])
    return [tuple(item) for item in texts]


# --- CPU configurations ------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), for reports."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def native_capability() -> str:
    """PyTorch's CPU capability on this machine with no override (AVX512, AVX2, ...).

    Asked in a fresh interpreter without the configuration variables, because the
    capability is fixed when torch is imported.
    """
    environment = {key: value for key, value in os.environ.items() if key not in CPU_CONFIG_VARIABLES}
    result = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
        env=environment, capture_output=True, text=True, timeout=120, check=True)
    return result.stdout.strip()


def active_overrides() -> dict:
    """The CPU-configuration variables set in this process's environment."""
    return {key: os.environ[key] for key in CPU_CONFIG_VARIABLES if key in os.environ}


def describe_configuration() -> str:
    """One line: the CPU, its native ATen capability, and the overrides in effect."""
    overrides = active_overrides()
    native = native_capability()
    line = f"CPU {cpu_model()}, {platform.machine()}; native ATen capability {native}"
    if not overrides:
        return line + "; native kernels (no overrides)"
    words = " ".join(f"{key}={value}" for key, value in overrides.items())
    configs = foreign_cpu_configs(native)
    kind = (f"foreign configuration {configs.index(overrides) + 1} of {len(configs)}" if overrides in configs
            else "overrides")
    return f"{line}; running under {kind}: {words}"


# --- the pytest plugin -------------------------------------------------------------


def _patch_nbval() -> None:
    """Make nbval's comparison honour ``nbval-tolerance`` (idempotent)."""
    from nbval.plugin import IPyNbCell

    if getattr(IPyNbCell.compare_outputs, "_rnnbook_tolerant", False):
        return
    exact_compare = IPyNbCell.compare_outputs

    def compare_outputs(self, test, ref, skip_compare=None):
        tolerance = cell_tolerance(self.cell.metadata)
        if tolerance is None:
            return exact_compare(self, test, ref, skip_compare)
        ref_texts, test_texts = comparable_texts(ref), comparable_texts(test)
        reasons = []
        if [label for label, _ in ref_texts] == [label for label, _ in test_texts]:
            for (label, ours), (_, theirs) in zip(ref_texts, test_texts):
                why = compare_text(ours, theirs, tolerance)
                if why:
                    reasons.append(f"{label}: {why}")
            if not reasons:
                return True
        if exact_compare(self, test, ref, skip_compare):
            return True
        self.comparison_traceback.append(
            f"cell tolerance rtol={tolerance.rtol:g} atol={tolerance.atol:g} ({tolerance.reason}): "
            + ("; ".join(reasons) or "the outputs have different kinds or numbers of parts"))
        return False

    compare_outputs._rnnbook_tolerant = True
    IPyNbCell.compare_outputs = compare_outputs


#: Kernel starts attempted before a notebook fails to start (see _retry_kernel_starts).
KERNEL_START_ATTEMPTS = 3


def _retry_kernel_starts() -> None:
    """Retry a kernel that fails to start (idempotent).

    jupyter_client picks free TCP ports by binding and releasing them, so two kernels
    started at the same moment (two test workers) can both pick the same port; the
    second then never answers. A fresh start picks fresh ports.
    """
    import nbval.kernel

    if getattr(nbval.kernel.start_new_kernel, "_rnnbook_retry", False):
        return
    start_once = nbval.kernel.start_new_kernel

    def start_new_kernel(*args, **kwargs):
        for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
            try:
                return start_once(*args, **kwargs)
            except RuntimeError:
                if attempt == KERNEL_START_ATTEMPTS:
                    raise

    start_new_kernel._rnnbook_retry = True
    nbval.kernel.start_new_kernel = start_new_kernel


def pytest_configure(config):
    if getattr(config.option, "nbval", False) or getattr(config.option, "nbval_lax", False):
        _patch_nbval()
        _retry_kernel_starts()


def pytest_terminal_summary(terminalreporter, config):
    """Say which CPU configuration the notebooks were validated under (also with -q)."""
    if getattr(config.option, "nbval", False) or getattr(config.option, "nbval_lax", False):
        terminalreporter.write_line(f"notebooks validated on: {describe_configuration()}")


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["foreign-env", "rotated-env", "all-foreign", "describe"],
                        help="foreign-env: print the first foreign configuration as NAME=value words; "
                             "rotated-env KEY: the foreign configuration a commit hash selects; "
                             "all-foreign: every foreign configuration, one per line; "
                             "describe: say which configuration is in effect")
    parser.add_argument("key", nargs="?", help="with rotated-env: the commit hash")
    args = parser.parse_args(argv)
    if args.command == "foreign-env":
        print(config_words(foreign_cpu_config()))
    elif args.command == "rotated-env":
        index, config = rotated_cpu_config(args.key or "")
        print(f"[foreign configuration {index + 1} of {len(foreign_cpu_configs())} (rotating among "
              f"{len(rotation_cpu_configs())}) for commit {(args.key or '')[:12]}: {config_words(config)}]", file=sys.stderr)
        print(config_words(config))
    elif args.command == "all-foreign":
        for config in foreign_cpu_configs():
            print(",".join(f"{key}={value}" for key, value in config.items()))
    else:
        print(describe_configuration())
    return 0


if __name__ == "__main__":
    sys.exit(main())
