"""`make gpu-check`: the book's GPU rows, measured in a few minutes on a machine with CUDA.

No page of the book has been built on a GPU, so every CUDA path in it is unverified
until this script runs on one. On a machine without CUDA it says so and exits 0.
With CUDA it runs, on the first GPU:

1. the equivalence harness of chapters 5, 7 and 10: every scratch stack
   (``StackedRNNScratch``, ``StackedLSTMScratch``, ``StackedGRUScratch``; one and two
   layers, one and two directions) against its ``nn`` module, outputs, final states and
   the gradients of every parameter, in float32 with TF32 switched off;
2. chapter 13's variable-length checks: a packed batch through ``nn.LSTM`` and ``nn.GRU``
   gives every sequence the outputs and final state it gets alone, and
   ``rnnbook.sequences.last_step`` picks each sequence's own last output;
3. chapter 15's versions of one LSTM layer (the loops and ``LSTMFunction`` with dense
   products) against ``nn.LSTM``, gradients included;
4. chapter 15's GPU rows: forward and backward time of ``nn.LSTM`` (cuDNN) in float32,
   bfloat16 and float16, ``nn.GRU``, the ``LSTMCell`` loop, the precomputed loop, the
   hand-written ``Function``, the precomputed loop replayed as a CUDA graph, and a step
   compiled with ``torch.compile(mode="reduce-overhead")``, at the book's size and the
   larger one, as ratios to float32 ``nn.LSTM`` in interleaved rounds with quartiles.

It prints one table and exits 1 if a check failed. A row that cannot run on this
machine is reported with its error instead of stopping the script.
``--device cpu`` runs the same checks and rows on the CPU (no CUDA graph, no float16
``nn.LSTM``), which is how the script itself is tested; ``--quick`` uses fewer rounds
and only the book's size.

    python tools/gpu_check.py                 # what make gpu-check runs
    python tools/gpu_check.py --json out.json # also write the rows as JSON
"""

import argparse
import json
import logging
import sys
import time
import warnings

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnbook import gru, lstm, rnn
from rnnbook.lstm_cells import cells_from_lstm, run_cells
from rnnbook.performance import (gate_step, interleaved_timings, lstm_autograd_function, lstm_fused_loop,
                                 lstm_per_gate_loop, lstm_precomputed_loop, stepwise_recurrence, training_step)
from rnnbook.sequences import last_step

SIZES = {"book size": (35, 32, 28, 256), "larger": (100, 64, 128, 512)}  # (T, B, I, H), as in chapter 15
WEIGHT_NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def no_cuda_message() -> str:
    built = torch.version.cuda or "none (a CPU-only build)"
    return (f"gpu-check skipped: no CUDA device is available (PyTorch {torch.__version__}, CUDA build "
            f"{built}). The book's GPU rows stay unmeasured; run `make gpu-check` on a machine with an "
            "NVIDIA GPU, or `python tools/gpu_check.py --device cpu --quick` to exercise the script here.")


class Report:
    """Rows of (section, check, result, passed) and the timing table."""

    def __init__(self):
        self.rows, self.timings = [], []

    def check(self, section, name, run):
        """Run ``run()``, which returns a short result text or raises on failure."""
        try:
            result, passed = run(), True
        except Exception as error:  # a failed check is reported, and the script goes on
            result, passed = f"{type(error).__name__}: {str(error).splitlines()[0][:100]}", False
        self.rows.append((section, name, result, passed))
        print(f"  [{'ok' if passed else 'FAIL'}] {section}: {name}: {result}", flush=True)

    @property
    def failed(self):
        return [row for row in self.rows if not row[3]]


def largest_difference(pairs) -> float:
    return max(float((a - b).detach().abs().max()) for a, b in pairs)


def stacked_equivalence(device, report):
    """Chapters 5, 7 and 10: scratch stacks against nn.RNN, nn.LSTM and nn.GRU on ``device``."""
    stacks = {"RNN": rnn.StackedRNNScratch, "LSTM": lstm.StackedLSTMScratch, "GRU": gru.StackedGRUScratch}
    for kind, stacked in stacks.items():
        for num_layers, bidirectional in [(1, False), (2, False), (2, True)]:
            def run(kind=kind, stacked=stacked, num_layers=num_layers, bidirectional=bidirectional):
                torch.manual_seed(0)
                I, H, T, B = 5, 8, 7, 3
                reference = stacked.pytorch_class(I, H, num_layers=num_layers, bidirectional=bidirectional)
                scratch = stacked(I, H, num_layers, bidirectional).copy_weights_from(reference)
                reference, scratch = reference.to(device), scratch.to(device)
                x = torch.randn(T, B, I, device=device)
                outputs = []
                for model in (reference, scratch):
                    output, state = model(x)
                    parts = (state,) if isinstance(state, torch.Tensor) else state
                    (output.square().sum() + sum(part.square().sum() for part in parts)).backward()
                    outputs.append((output, *parts))
                pairs = list(zip(*outputs))
                for index, layer in enumerate(scratch.layers):
                    suffix = f"_l{index // (2 if bidirectional else 1)}" + ("_reverse" if bidirectional and index % 2 else "")
                    for ours, theirs in scratch.pytorch_names.items():
                        if hasattr(layer, ours):
                            pairs.append((getattr(layer, ours).grad, getattr(reference, theirs + suffix).grad))
                for a, b in pairs:
                    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
                return f"equal, largest difference {largest_difference(pairs):.1e} ({len(pairs)} tensors)"
            report.check("ch5/7/10 stacks", f"{kind} L={num_layers} {'bi' if bidirectional else 'uni'}", run)


def packed_equivalence(device, report):
    """Chapter 13: a packed batch equals every sequence run alone; last_step picks the right step."""
    for kind in (nn.LSTM, nn.GRU):
        def run(kind=kind):
            torch.manual_seed(0)
            layer = kind(4, 6, batch_first=False).to(device)
            lengths = torch.tensor([7, 3, 5, 1])
            padded = torch.randn(7, 4, 4, device=device)
            packed = pack_padded_sequence(padded, lengths, enforce_sorted=False)
            output, state = layer(packed)
            output, _ = pad_packed_sequence(output, total_length=7)
            h_n = state[0] if isinstance(state, tuple) else state
            pairs = []
            for b, length in enumerate(lengths.tolist()):
                alone, alone_state = layer(padded[:length, b:b + 1])
                alone_h = alone_state[0] if isinstance(alone_state, tuple) else alone_state
                pairs += [(output[:length, b], alone[:, 0]), (h_n[:, b], alone_h[:, 0])]
            pairs.append((last_step(output, lengths), h_n[-1]))
            for a, b in pairs:
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
            return f"equal, largest difference {largest_difference(pairs):.1e}"
        report.check("ch13 packed", kind.__name__, run)


def layer_equivalence(device, report):
    """Chapter 15: every version of one LSTM layer against nn.LSTM, gradients included."""
    versions = {"per-gate loop": lstm_per_gate_loop, "fused loop": lstm_fused_loop,
                "precomputed + unbind": lstm_precomputed_loop, "Function, dense GEMM": lstm_autograd_function}
    for name, version in versions.items():
        def run(version=version):
            torch.manual_seed(0)
            T, B, I, H = 7, 3, 5, 6
            reference = nn.LSTM(I, H).to(device)
            weights = tuple(getattr(reference, n) for n in WEIGHT_NAMES)
            x = torch.randn(T, B, I, device=device)
            state = (torch.randn(B, H, device=device), torch.randn(B, H, device=device))
            results = []
            for use_module in (True, False):
                leaves = [t.clone().requires_grad_() for t in (x, *state)]
                if use_module:
                    output, (h, c) = reference(leaves[0], (leaves[1][None], leaves[2][None]))
                    h, c = h[0], c[0]
                else:
                    output, (h, c) = version(leaves[0], (leaves[1], leaves[2]), weights)
                loss = output.square().sum() + h.sum() + c.sum()
                results.append((output, h, c, *torch.autograd.grad(loss, [*leaves, *weights])))
            pairs = list(zip(*results))
            for a, b in pairs:
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
            return f"equal, largest difference {largest_difference(pairs):.1e}"
        report.check("ch15 versions", name, run)


def graphed_loop(T, B, I, H, device):
    """The precomputed loop captured as a CUDA graph (forward and backward) by make_graphed_callables."""
    torch.manual_seed(0)
    reference = nn.LSTM(I, H).to(device)
    weights = tuple(getattr(reference, n) for n in WEIGHT_NAMES)

    class Loop(nn.Module):
        def __init__(self):
            super().__init__()
            self.weights = nn.ParameterList([nn.Parameter(w.detach().clone()) for w in weights])

        def forward(self, x):
            state = (x.new_zeros(B, H), x.new_zeros(B, H))
            return lstm_precomputed_loop(x, state, tuple(self.weights))[0]

    x = torch.randn(T, B, I, device=device, requires_grad=True)
    graphed = torch.cuda.make_graphed_callables(Loop(), (x,))
    return lambda: graphed(x)


def timing_rows(device, sizes, rounds, report):
    """Chapter 15's GPU rows: ratio to float32 nn.LSTM at each size."""
    for size_name, (T, B, I, H) in sizes.items():
        torch.manual_seed(0)
        module = nn.LSTM(I, H).to(device)
        weights = tuple(getattr(module, n) for n in WEIGHT_NAMES)
        cells = cells_from_lstm(module).to(device)
        x = torch.randn(T, B, I, device=device, requires_grad=True)
        state = (torch.zeros(B, H, device=device), torch.zeros(B, H, device=device))
        runs = {"nn.LSTM float32": lambda: module(x)[0]}
        for dtype in (torch.bfloat16, torch.float16):
            if device.type == "cpu" and dtype == torch.float16:
                continue
            low = nn.LSTM(I, H).to(device, dtype)
            x_low = x.detach().to(dtype).requires_grad_()
            runs[f"nn.LSTM {str(dtype).replace('torch.', '')}"] = lambda low=low, x_low=x_low: low(x_low)[0]
        gru_module = nn.GRU(I, H).to(device)
        runs["nn.GRU float32"] = lambda: gru_module(x)[0]
        runs["LSTMCell loop"] = lambda: run_cells(cells, x)[0]
        runs["precomputed + unbind"] = lambda: lstm_precomputed_loop(x, state, weights)[0]
        runs["Function, dense GEMM"] = lambda: lstm_autograd_function(x, state, weights)[0]
        extra = {}
        if device.type == "cuda":
            extra["precomputed loop, CUDA graph"] = lambda: graphed_loop(T, B, I, H, device)

        def compiled_step(x=x, state=state, weights=weights):
            recurrence = stepwise_recurrence(torch.compile(gate_step, mode="reduce-overhead"))
            return lambda: lstm_precomputed_loop(x, state, weights, recurrence)[0]

        extra["torch.compile step (reduce-overhead)"] = compiled_step
        for name, make in extra.items():
            try:
                run = make()
                training_step(run)()  # builds (captures or compiles) once, outside the timing
                runs[name] = run
            except Exception as error:
                report.timings.append((size_name, name, f"not run: {type(error).__name__}: "
                                                        f"{str(error).splitlines()[0][:80]}"))
        jobs = {name: training_step(run) for name, run in runs.items()}
        synchronize = torch.cuda.synchronize if device.type == "cuda" else None  # time the work, not its launch
        try:
            timing = interleaved_timings(jobs, "nn.LSTM float32", rounds=rounds, warmup=1, synchronize=synchronize)
        except Exception as error:
            report.timings.append((size_name, "all rows", f"failed: {type(error).__name__}: {error}"))
            continue
        for name in jobs:
            first, third = timing.quartiles[name]
            text = (f"{1e3 * timing.seconds[name]:.2f} ms" if name == "nn.LSTM float32"
                    else f"{timing.ratios[name]:.2f}x [{first:.2f}-{third:.2f}]")
            report.timings.append((size_name, name, text))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--quick", action="store_true", help="fewer rounds, the book's size only")
    parser.add_argument("--json", help="also write the checks and rows to this file")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(no_cuda_message())
        return 0
    device = torch.device(args.device)
    started = time.perf_counter()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"gpu-check on {name}: PyTorch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"cuDNN {torch.backends.cudnn.version() if device.type == 'cuda' else '-'}", flush=True)
    if device.type == "cpu":
        torch.set_num_threads(1)
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "no CUDA runtime" notice
    report = Report()
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # float32 means float32
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")
        stacked_equivalence(device, report)
        packed_equivalence(device, report)
        layer_equivalence(device, report)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32  # PyTorch's defaults for timing
    sizes = {"book size": SIZES["book size"]} if args.quick else SIZES
    timing_rows(device, sizes, rounds=3 if args.quick else 7, report=report)
    print("\nforward + backward, dL/dx included; ratio to float32 nn.LSTM: median of interleaved rounds "
          "[quartiles]; PyTorch's default TF32 settings")
    for size_name, row, text in report.timings:
        print(f"  {size_name:<10} {row:<38} {text}")
    seconds = time.perf_counter() - started
    print(f"\n{len(report.rows) - len(report.failed)} of {len(report.rows)} checks passed in {seconds:.0f} s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": name, "torch": torch.__version__, "checks": report.rows,
                       "timings": report.timings, "seconds": seconds}, handle, indent=1)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
