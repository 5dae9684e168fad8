"""Plots that several chapters draw the same way (the style itself is in runtime)."""

import matplotlib.pyplot as plt


def plot_learning_curves(histories: dict, baselines: dict | None = None, *, ax=None,
                         title: str = "Validation perplexity during training"):
    """Validation perplexity per epoch for one or more training runs.

    ``histories`` maps a label to a history as returned by the book's training loop
    (a dict with lists ``"epoch"`` and ``"val_ppl"``, optionally ``"train_ppl"``,
    drawn dashed in the same colour). ``baselines`` maps a label to a constant
    perplexity drawn as a horizontal dotted line. Returns the axes.
    """
    if not histories:
        raise ValueError("plot_learning_curves needs at least one history")
    if ax is None:
        _, ax = plt.subplots()
    for label, history in histories.items():
        missing = {"epoch", "val_ppl"} - set(history)
        if missing:
            raise ValueError(f"history {label!r} lacks {sorted(missing)}")
        (line,) = ax.plot(history["epoch"], history["val_ppl"], marker="o", markersize=3,
                          label=f"{label} (validation)")
        if "train_ppl" in history:
            ax.plot(history["epoch"], history["train_ppl"], linestyle="--", color=line.get_color(),
                    alpha=0.7, label=f"{label} (training)")
    for index, (label, value) in enumerate((baselines or {}).items()):
        ax.axhline(value, linestyle=":", color=f"C{index + len(histories)}", label=f"{label} ({value:.2f})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("perplexity")
    ax.set_title(title)
    ax.legend()
    return ax
