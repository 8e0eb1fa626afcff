"""The more-data comparison as a table and as sentences built from its numbers."""

import pandas as pd

from ddcore.models import interpolation_threshold_width


def change_table(runs):
    """Tabulate mean test MSE per width and N, and the relative change from the smallest N to the largest."""
    means = runs.groupby(["width", "n_params", "n_train"])["test_mse"].mean().unstack("n_train")
    sizes = list(means.columns)
    table = pd.DataFrame({"width": means.index.get_level_values("width"),
                          "n_params": means.index.get_level_values("n_params")})
    for n in sizes:
        table[f"test MSE, N={n}"] = means[n].to_numpy()
    if len(sizes) > 1:
        first, last = means[sizes[0]].to_numpy(), means[sizes[-1]].to_numpy()
        table[f"change N={sizes[0]} → {sizes[-1]}"] = (last - first) / first
    return table


def verdict_sentences(table, d_out):
    """Write one sentence per width that says whether more data helped or hurt, with the numbers."""
    columns = [c for c in table.columns if c.startswith("test MSE, N=")]
    if len(columns) < 2:
        return ["Choose at least two training-set sizes to compare."]
    small, large = int(columns[0].split("=")[1]), int(columns[-1].split("=")[1])
    threshold = interpolation_threshold_width(large, d_out=d_out)

    sentences = []
    for width, n_params, before, after in zip(
        table["width"], table["n_params"], table[columns[0]], table[columns[-1]], strict=True
    ):
        change = (after - before) / before
        verdict = "helped" if after < before else "hurt"
        sentences.append(
            f"**Width {width}** ({n_params:,} parameters): going from N={small} to "
            f"N={large}, the test MSE went from {before:.4g} to {after:.4g} ({change:+.1%}), "
            f"so more data **{verdict}**. At N={large} the interpolation threshold is near "
            f"width {threshold:.0f}."
        )
    return sentences
