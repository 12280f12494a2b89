"""Loss curves from a run's trace, drawn with matplotlib (the optional `plot` extra) without pyplot's global state."""


def require():
    """Raise ImportError with the install command when matplotlib is missing (checked before a run starts)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("--plot needs matplotlib, which is not installed; run: pip install 'vggnumpy[plot]' "
                          "(or pip install matplotlib)") from None


def loss_curves(rows, path):
    """rows of a run's trace (Result.trace): one line per term (log scale) and the total, against the iteration; PNG."""
    require()
    from matplotlib.figure import Figure
    from ..files.paths import atomic_write
    fig = Figure(figsize=(8, 5), dpi=100)
    ax = fig.add_subplot()
    its = [r["iteration"] for r in rows]
    names = list(dict.fromkeys(k for r in rows for k in r["terms"]))
    for name in names:
        ax.plot(its, [max(r["terms"].get(name, float("nan")), 1e-12) for r in rows], label=name, lw=1.2)
    ax.plot(its, [max(r["loss"], 1e-12) for r in rows], label="total", color="black", lw=2)
    for a, b in zip(rows, rows[1:]):
        if a["scale"] != b["scale"]:
            ax.axvline(b["iteration"] - 0.5, color="grey", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("weighted loss")
    ax.set_title("loss per term (dotted: next scale of the pyramid)")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
