"""Pictures of attention weights: a heatmap and a layer/head explorer (taught in
01b_transformer).

    plot_attention(weights[layer][0, head], tokens, ax=ax)    # one head: rows are queries
    attention_explorer(weights, tokens)                        # sliders for layer and head

`weights` is what a model returns per layer, (batch, heads, T_queries, T_keys); the
explorer shows the first sequence of the batch. Its picture is an `ipywidgets.Image` whose
value is replaced when a slider moves (display updates made from widget callbacks do not
reach the page), and nothing waits for a click: headless, it shows its first picture.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import torch


def plot_attention(weights: torch.Tensor, tokens: Sequence[str], ax=None, title: str = ""):
    """Heatmap of one head's weights (T_q, T_k): row i is where token i reads from."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.5))
    weights = weights.detach().float().cpu().numpy()
    image = ax.imshow(weights, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(weights.shape[1]), tokens[:weights.shape[1]], rotation=90, fontsize=8)
    ax.set_yticks(range(weights.shape[0]), tokens[:weights.shape[0]], fontsize=8)
    ax.set_xlabel("key (read from)")
    ax.set_ylabel("query (reading)")
    ax.set_title(title, fontsize=10)
    return image


def _png(weights: torch.Tensor, tokens: Sequence[str], title: str) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 5))
    ax = fig.add_subplot()
    fig.colorbar(plot_attention(weights, tokens, ax, title), ax=ax, fraction=0.046)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def attention_explorer(attentions: Sequence[torch.Tensor], tokens: Sequence[str]):
    """Layer and head sliders over a model's attention weights, with the heatmap below."""
    import ipywidgets as widgets

    layer = widgets.IntSlider(value=0, min=0, max=len(attentions) - 1, description="layer")
    head = widgets.IntSlider(value=0, min=0, max=attentions[0].size(1) - 1, description="head")
    picture = widgets.Image(format="png")

    def draw(_=None) -> None:
        picture.value = _png(attentions[layer.value][0, head.value], tokens,
                             f"layer {layer.value}, head {head.value}")

    layer.observe(draw, names="value")
    head.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([layer, head]), picture])
