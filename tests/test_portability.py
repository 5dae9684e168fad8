"""The portable-validation contract: tolerant comparison, its nbval plugin, the CPU configurations."""

import os
import subprocess
import sys

import nbformat
import pytest

from conftest import ROOT
from rnnbook.portability import (CPU_CONFIG_VARIABLES, TOLERANCE_KEY, Tolerance, cell_tolerance,
                                 comparable_texts, compare_text, deviation, foreign_cpu_config, foreign_cpu_configs, rotated_cpu_config, rotation_cpu_configs,
                                 native_capability, split_numbers)


def test_numbers_are_split_from_the_words_around_them():
    words, numbers = split_numbers("epoch  8   train perplexity   4.72   validation 5.20, -3e-05 and 1.9x")
    assert numbers == [8.0, 4.72, 5.2, -3e-05, 1.9]
    assert words == ["epoch ", " train perplexity ", " validation ", ", ", " and ", "x"]


def test_words_that_contain_digits_are_not_numbers():
    assert split_numbers("float32 weight_ih_l0 W_1 x2")[1] == []
    assert split_numbers("(256, 28) T=35")[1] == [256.0, 28.0, 35.0]


def test_exact_comparison_is_the_default():
    assert compare_text("ppl 5.20", "ppl 5.20", None) is None
    assert "no tolerance" in compare_text("ppl 5.20", "ppl 5.21", None)


def test_numbers_within_the_tolerance_pass_and_outside_fail():
    tolerance = Tolerance(rtol=0.02, reason="training")
    assert compare_text("ppl 5.20 after 8 epochs", "ppl 5.27 after 8 epochs", tolerance) is None
    why = compare_text("ppl 5.20 after 8 epochs", "ppl 5.40 after 8 epochs", tolerance)
    assert "5.4" in why and "5.2" in why and "rtol 0.02" in why
    assert compare_text("loss 0.001", "loss 0.004", Tolerance(atol=0.005, reason="x")) is None
    assert compare_text("loss 0.001", "loss 0.004", Tolerance(rtol=0.5, reason="x")) is not None


def test_the_words_are_still_compared_exactly():
    tolerance = Tolerance(rtol=0.5, reason="training")
    assert "differs" in compare_text("GRU wins by 0.2", "LSTM wins by 0.2", tolerance)
    assert compare_text("accuracy 0.54", "accuracy None", tolerance) is not None
    assert compare_text("a 1 b 2", "a 1 b", tolerance) is not None


def test_a_column_may_gain_a_digit():
    tolerance = Tolerance(atol=0.1, reason="training")
    assert compare_text("ppl  9.98 |", "ppl 10.03 |", tolerance) is None


def test_deviation_measures_the_needed_tolerance():
    assert deviation("a 1.0 b 10", "a 1.1 b 10") == pytest.approx((0.1, 0.1))
    assert deviation("a 1.0", "b 1.0") is None
    assert deviation("same 3", "same 3") == (0.0, 0.0)


def test_tolerance_declarations_are_validated():
    assert cell_tolerance({}) is None
    declared = cell_tolerance({TOLERANCE_KEY: {"rtol": 0.03, "reason": "training", "kind": "training"}})
    assert declared == Tolerance(rtol=0.03, atol=0.0, reason="training")
    with pytest.raises(ValueError, match="reason"):
        cell_tolerance({TOLERANCE_KEY: {"rtol": 0.03, "kind": "training"}})
    with pytest.raises(ValueError, match="keys"):
        cell_tolerance({TOLERANCE_KEY: {"rtl": 0.03, "reason": "typo", "kind": "training"}})
    with pytest.raises(ValueError, match="not both zero"):
        cell_tolerance({TOLERANCE_KEY: {"reason": "no bound", "kind": "training"}})
    with pytest.raises(ValueError, match="rtol >= 0"):
        cell_tolerance({TOLERANCE_KEY: {"rtol": -1, "reason": "negative", "kind": "training"}})


def test_a_tolerance_names_its_kind_and_round_off_stays_tight():
    with pytest.raises(ValueError, match="kind"):
        cell_tolerance({TOLERANCE_KEY: {"rtol": 0.03, "reason": "no kind"}})
    with pytest.raises(ValueError, match="kind"):
        cell_tolerance({TOLERANCE_KEY: {"rtol": 0.03, "reason": "unknown kind", "kind": "noise"}})
    assert cell_tolerance({TOLERANCE_KEY: {"rtol": 0.02, "reason": "float64", "kind": "round-off"}}).rtol == 0.02
    with pytest.raises(ValueError, match="round-off"):
        cell_tolerance({TOLERANCE_KEY: {"rtol": 0.05, "reason": "float64", "kind": "round-off"}})
    with pytest.raises(ValueError, match="round-off"):
        cell_tolerance({TOLERANCE_KEY: {"rtol": 0.01, "atol": 0.01, "reason": "float64", "kind": "round-off"}})


def test_comparable_texts_merge_streams_and_skip_images():
    outputs = [nbformat.v4.new_output("stream", name="stdout", text="a 1\n"),
               nbformat.v4.new_output("display_data", data={"image/png": "AAAA", "text/plain": "<Figure>"}),
               nbformat.v4.new_output("stream", name="stdout", text="b 2\n")]
    assert comparable_texts(outputs) == [("stdout", "a 1\nb 2\n"), ("text/plain", "<Figure>")]


def test_the_foreign_configuration_steps_below_the_native_one():
    assert foreign_cpu_config("AVX512", "x86_64") == {
        "ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    assert foreign_cpu_config("AVX2", "x86_64")["ONEDNN_MAX_CPU_ISA"] == "SSE41"
    assert foreign_cpu_config("DEFAULT", "x86_64")["ONEDNN_MAX_CPU_ISA"] == "SSE41"
    assert foreign_cpu_config("DEFAULT", "arm64") == {"ATEN_CPU_CAPABILITY": "default"}
    assert set(foreign_cpu_config()) <= set(CPU_CONFIG_VARIABLES)
    words = subprocess.run([sys.executable, "-m", "rnnbook.portability", "foreign-env"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert dict(word.split("=") for word in words) == foreign_cpu_config()


def test_the_foreign_configuration_changes_what_torch_runs():
    """The overrides take effect: ATen reports the capability they ask for."""
    probe = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    environment = {**os.environ, **foreign_cpu_config()}
    foreign = subprocess.run([sys.executable, "-c", probe], env=environment,
                             capture_output=True, text=True, check=True).stdout.strip()
    assert foreign == "DEFAULT"
    assert native_capability() != "DEFAULT", "this machine's native kernels are the foreign ones: nothing differs"


# --- the plugin, end to end: strict nbval on a tiny notebook ------------------------


def _notebook(tmp_path, printed: str, tolerance: dict | None):
    """A notebook whose one cell prints 5.27 but whose committed output says ``printed``."""
    cell = nbformat.v4.new_code_cell("print('validation perplexity 5.27')", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{printed}\n")]
    if tolerance is not None:
        cell.metadata[TOLERANCE_KEY] = tolerance
    notebook = nbformat.v4.new_notebook(cells=[cell])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "tiny.ipynb"
    nbformat.write(notebook, path)
    return path


def _nbval(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "-q",
                           "-p", "no:cacheprovider", "-p", "rnnbook.portability", "--rootdir", str(path.parent),
                           str(path)], capture_output=True, text=True, cwd=path.parent, timeout=300)


@pytest.mark.parametrize("printed, tolerance, passes", [
    ("validation perplexity 5.27", None, True),                                   # exact and equal
    ("validation perplexity 5.20", None, False),                                  # exact is the default
    ("validation perplexity 5.20", {"rtol": 0.02, "reason": "training", "kind": "training"}, True),   # within 2%
    ("validation perplexity 5.00", {"rtol": 0.02, "reason": "training", "kind": "training"}, False),  # outside 2%
    ("test perplexity 5.20", {"rtol": 0.02, "reason": "training", "kind": "training"}, False),        # words differ
])
def test_nbval_honours_the_declared_tolerance(tmp_path, printed, tolerance, passes):
    result = _nbval(_notebook(tmp_path, printed, tolerance))
    assert (result.returncode == 0) == passes, result.stdout[-2000:] + result.stderr[-2000:]
    if tolerance and not passes:
        assert "cell tolerance rtol=0.02" in result.stdout


def test_nbval_reports_the_configuration_it_ran_under(tmp_path):
    result = _nbval(_notebook(tmp_path, "validation perplexity 5.27", None))
    assert "native ATen capability" in result.stdout


def test_make_test_validates_under_a_rotated_foreign_configuration():
    makefile = (ROOT / "Makefile").read_text()
    test_recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "$(CPU_ENV)" in test_recipe and "CPU_CONFIG ?= rotated" in makefile
    assert "-p rnnbook.portability" in (ROOT / "pyproject.toml").read_text()


def test_the_foreign_configurations_each_differ_from_native_in_two_libraries():
    native_values = {"AVX512": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
                     "AVX2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}
    for native, count in (("AVX512", 6), ("AVX2", 3)):
        configs = foreign_cpu_configs(native, "x86_64")
        assert len(configs) == count and configs[0] == foreign_cpu_config(native, "x86_64")
        assert len({tuple(sorted(config.items())) for config in configs}) == count, "configurations repeat"
        for config in configs:
            assert set(config) == set(CPU_CONFIG_VARIABLES)
            differing = sum(config[key].lower() != native_values[native].get(key, "native").lower()
                            for key in CPU_CONFIG_VARIABLES)
            assert differing >= 2, config
        assert {config["ONEDNN_MAX_CPU_ISA"] for config in configs} == (
            {"AVX2", "AVX"} if native == "AVX512" else {"SSE41"})
    assert foreign_cpu_configs("DEFAULT", "arm64") == [{"ATEN_CPU_CAPABILITY": "default"}]


def test_the_commit_hash_rotates_among_the_configurations_without_mkl_compatible():
    configs = foreign_cpu_configs("AVX512", "x86_64")
    rotation = rotation_cpu_configs("AVX512", "x86_64")
    assert [configs.index(config) for config in rotation] == [1, 3, 5]  # configurations 2, 4 and 6
    assert all(config["MKL_CBWR"] != "COMPATIBLE" for config in rotation)
    chosen = [rotated_cpu_config(f"{n:040x}", "AVX512", "x86_64") for n in range(6)]
    assert [index for index, _ in chosen] == [1, 3, 5, 1, 3, 5]
    assert all(config == configs[index] for index, config in chosen)
    avx2_configs = foreign_cpu_configs("AVX2", "x86_64")
    assert [avx2_configs.index(c) for c in rotation_cpu_configs("AVX2", "x86_64")] == [1]  # MKL's AVX2 branch
    assert rotation_cpu_configs("DEFAULT", "arm64") == [{"ATEN_CPU_CAPABILITY": "default"}]  # nothing else to choose
    assert rotated_cpu_config("ECF6D3A1CD38", "AVX512", "x86_64") == rotated_cpu_config("ecf6d3a1cd38", "AVX512", "x86_64")
    with pytest.raises(ValueError, match="commit hash"):
        rotated_cpu_config("", "AVX512", "x86_64")
