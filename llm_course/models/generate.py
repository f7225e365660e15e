"""Sampling text from a causal language model (taught in 02_pretraining_gpt, used in 06).

`generate_text` wraps `model.generate` with the three knobs lesson 02 explains:
temperature (sharpen or flatten the distribution), top-k (keep the k likeliest tokens) and
top-p (keep the smallest set of tokens whose probability adds up to p). `sampling_panel`
puts them on sliders.
"""

from __future__ import annotations

import torch

from llm_course.env import dry_run


@torch.no_grad()
def generate_text(model, tokenizer, prompt: str, max_new_tokens: int = 40,
                  temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                  seed: int = 0, greedy: bool = False) -> str:
    """Continue `prompt`; returns the prompt plus the new text. Seeded, so repeatable.

    A dry run (`llm_course.env.dry_run`) generates at most 8 new tokens.
    """
    if temperature <= 0 and not greedy:
        raise ValueError(f"temperature={temperature} must be > 0 (or use greedy=True)")
    device = next(model.parameters()).device
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
    if ids.shape[1] == 0:  # an empty prompt starts from the end-of-text token
        ids = torch.tensor([[tokenizer.eos_token_id]])
    limit = getattr(model.config, "n_positions", None) or getattr(
        model.config, "max_position_embeddings", 10**9)
    max_new_tokens = max(1, min(dry_run.new_tokens(max_new_tokens), limit - 1))
    ids = ids[:, -(limit - max_new_tokens):].to(device)  # crop to the model's context
    torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    options = {"do_sample": False} if greedy else {
        "do_sample": True, "temperature": temperature, "top_k": top_k or 0,
        "top_p": 1.0 if top_p is None else top_p}
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                         pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                         **options)
    model.train(was_training)
    return tokenizer.decode(out[0], skip_special_tokens=True)


def sampling_panel(model, tokenizer, prompt: str = "The history of the city", seed: int = 0):
    """Prompt, temperature, top-k, top-p sliders and a Generate button (lesson 02)."""
    import ipywidgets as widgets

    wide = {"style": {"description_width": "110px"}, "layout": widgets.Layout(width="420px")}
    text = widgets.Text(value=prompt, description="prompt", style=wide["style"],
                        layout=widgets.Layout(width="90%"))
    temperature = widgets.FloatSlider(value=0.8, min=0.1, max=2.0, step=0.1,
                                      description="temperature", **wide)
    top_k = widgets.IntSlider(value=40, min=0, max=200, step=5, description="top-k (0 = off)",
                              **wide)
    top_p = widgets.FloatSlider(value=0.95, min=0.05, max=1.0, step=0.05, description="top-p",
                                **wide)
    button = widgets.Button(description="Generate", button_style="primary")
    out = widgets.Output()

    def run(_=None):
        out.clear_output()
        with out:
            print(generate_text(model, tokenizer, text.value, 40, temperature.value,
                                top_k.value or None, top_p.value, seed=seed))

    button.on_click(run)
    return widgets.VBox([text, temperature, top_k, top_p, button, out])
