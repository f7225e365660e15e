"""Instruction data for supervised fine-tuning (SFT): tasks written as chat turns, a chat
template, and the loss on the answer only (taught in 06c_instruction_tuning).

* `instruction_mix` turns the course datasets into instructions with answers: questions and
  answers (`faq`), "is this review positive or negative?" (`sentiment`), "write a headline for
  this story" and "which section is this headline from?" (`topics`), "continue this review"
  (`sentiment`). Training examples come from each dataset's train split, held-out ones from
  its test split, and one whole kind (`HELD_OUT_KIND`) is never trained on.
* `add_chat_template` gives a base model (course-gpt) role markers as new special tokens and
  a Jinja chat template; an instruct model (SmolLM2) brings its own.
* `encode_instructions` tokenizes prompt and answer and puts -100 on the prompt (`mask_prompt`),
  so that only answer tokens are in the loss; `answer_loss` and `generate_answers` measure the
  result; `trl_offline_args` keeps TRL's trainers off the network.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from llm_course.data.loaders import load
from llm_course.env import dry_run
from llm_course.env.scale import resolve_scale
from llm_course.models.loading import quiet_loading

IGNORE = -100
SECTIONS = ("business", "entertainment", "politics", "sport", "tech")
SENTIMENTS = ("negative", "positive")
KINDS = ("qa", "sentiment", "headline", "continue", "topic")
HELD_OUT_KIND = "topic"  # never in training: does the model follow an instruction it never saw?
PROMPTS = {
    "qa": "{question}",
    "sentiment": "Is this movie review positive or negative?\n{text}",
    "headline": "Write a one-line headline for this news story.\n{text}",
    "continue": "Continue this movie review: {text}",
    "topic": ("Which section of the news is this headline from: business, entertainment, "
              "politics, sport or tech?\n{text}"),
}
LABELS = {"sentiment": SENTIMENTS, "topic": SECTIONS}  # kinds whose answer is one label word

# course-gpt's chat format: role markers and an end-of-turn marker, all new special tokens
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
END_OF_TURN = "<|end|>"
COURSE_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


# ----------------------------------------------------------------------------- the mix ---

def _words(text: str, limit: int) -> str:
    words = text.split()
    return " ".join(words[:limit]) + (" ..." if len(words) > limit else "")


def review_opening(text: str) -> tuple[str, str]:
    """A review cut into an opening (a third of it, 3 to 8 words) and the rest."""
    words = text.split()
    n = max(3, min(8, len(words) // 3))
    return " ".join(words[:n]), " ".join(words[n:])


def _examples(kind: str, split, max_words: int, answer_words: int) -> list[dict]:
    """Every example of `kind` that one split of its dataset gives."""
    out = []
    if kind == "qa":
        for row in split:
            out.append({"text": row["question"], "answer": _words(row["answer"], answer_words),
                        "source": row["question"]})
    elif kind in ("sentiment", "continue"):
        names = split.features["label"].names
        for row in split:
            if kind == "sentiment":
                out.append({"text": _words(row["text"], max_words),
                            "answer": names[row["label"]], "source": row["text"]})
            else:
                opening, rest = review_opening(row["text"])
                if rest:
                    out.append({"text": opening, "answer": _words(rest, answer_words),
                                "source": row["text"], "label": names[row["label"]]})
    elif kind in ("headline", "topic"):
        names = split.features["label"].names
        for row in split:
            headline, _, body = row["text"].partition("\n\n")
            first = body.split("\n\n")[0]
            if kind == "headline":
                out.append({"text": _words(first, max_words), "answer": headline,
                            "source": row["text"]})
            else:
                out.append({"text": headline, "answer": names[row["label"]], "source": row["text"]})
    else:
        raise ValueError(f"unknown instruction kind {kind!r}: choose one of {', '.join(KINDS)}")
    for ex in out:
        ex["kind"] = kind
        ex["instruction"] = PROMPTS[kind].format(text=ex["text"], question=ex["text"])
    return out


def instruction_mix(scale: str | None = None, train_per_kind: int = 200,
                    heldout_per_kind: int = 50, max_words: int = 30, answer_words: int = 16,
                    held_out_kind: str = HELD_OUT_KIND, seed: int = 0) -> dict[str, list[dict]]:
    """{"train", "heldout", "heldout_kind"}: lists of {"kind", "instruction", "answer", ...}.

    "train" mixes every kind except `held_out_kind`, `train_per_kind` of each (from the
    datasets' train splits); "heldout" has `heldout_per_kind` unseen examples of those kinds
    and "heldout_kind" as many of the kind never trained on (both from the test splits).
    Inputs are cut to `max_words` words, free-text answers to `answer_words`. A held-out
    example whose instruction or source text is also in training is dropped (two reviews can
    open with the same words), so nothing is shared between training and held-out sets.
    """
    if held_out_kind not in KINDS:
        raise ValueError(f"held_out_kind={held_out_kind!r}: choose one of {', '.join(KINDS)}")
    scale = resolve_scale(scale)
    datasets = {"qa": "faq", "sentiment": "sentiment", "continue": "sentiment",
                "headline": "topics", "topic": "topics"}
    loaded = {name: load(name, scale=scale) for name in set(datasets.values())}
    g = torch.Generator().manual_seed(seed)

    def pick(items: list[dict], n: int) -> list[dict]:
        order = torch.randperm(len(items), generator=g).tolist()
        return [items[i] for i in order[:n]]

    train = []
    for kind in KINDS:
        if kind != held_out_kind:
            split = loaded[datasets[kind]]["train"]
            train += pick(_examples(kind, split, max_words, answer_words), train_per_kind)
    seen = {ex["instruction"] for ex in train} | {ex["source"] for ex in train}
    heldout, heldout_kind = [], []
    for kind in KINDS:
        split = loaded[datasets[kind]]["test"]
        fresh = [ex for ex in _examples(kind, split, max_words, answer_words)
                 if ex["instruction"] not in seen and ex["source"] not in seen]
        (heldout_kind if kind == held_out_kind else heldout).extend(pick(fresh, heldout_per_kind))
    order = torch.randperm(len(train), generator=g).tolist()
    return {"train": [train[i] for i in order], "heldout": heldout, "heldout_kind": heldout_kind}


def per_kind(examples: Sequence[dict], n: int | None = None) -> dict[str, list[dict]]:
    """The examples grouped by kind (in the order of KINDS), at most `n` of each."""
    groups = {kind: [ex for ex in examples if ex["kind"] == kind][:n] for kind in KINDS}
    return {kind: group for kind, group in groups.items() if group}


def overlap(first: Sequence[dict], second: Sequence[dict]) -> set[str]:
    """Instructions or source texts that appear in both sets (should be empty)."""
    keys = ("instruction", "source")
    return {ex[k] for ex in first for k in keys} & {ex[k] for ex in second for k in keys}


# ------------------------------------------------------------------------ chat format ---

def add_chat_template(model, tokenizer) -> None:
    """Give a base model a chat format: role markers and `<|end|>` as new special tokens.

    The embedding matrix grows by one row per new token (transformers starts them at the
    mean of the old rows); `<|end|>` becomes the end-of-sequence token, so generation stops
    at the end of the assistant's turn. Works in place on `model` and `tokenizer`.
    """
    pad = tokenizer.pad_token or tokenizer.eos_token  # keep padding on the old end-of-text
    tokenizer.add_special_tokens({"additional_special_tokens": [*ROLE_TOKENS, END_OF_TURN]})
    tokenizer.pad_token = pad
    tokenizer.eos_token = END_OF_TURN
    tokenizer.chat_template = COURSE_CHAT_TEMPLATE
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        with quiet_loading():  # transformers explains mean-initialised rows at length
            model.resize_token_embeddings(len(tokenizer))
    end = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    model.config.eos_token_id = end
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.eos_token_id = end
        model.generation_config.pad_token_id = tokenizer.pad_token_id


def chat_prompt(tokenizer, instruction: str) -> str:
    """The text a chat model sees before it answers: the user's turn, then the assistant's cue."""
    return tokenizer.apply_chat_template([{"role": "user", "content": instruction}],
                                         tokenize=False, add_generation_prompt=True)


def chat_answer(tokenizer, answer: str) -> str:
    """What follows the prompt in a full conversation: the answer and the end-of-turn marker."""
    return answer + tokenizer.eos_token


# -------------------------------------------------------------------- the prompt mask ---

def mask_prompt(input_ids: torch.Tensor, prompt_lengths: torch.Tensor,
                attention_mask: torch.Tensor) -> torch.Tensor:
    """Labels for SFT: the input ids, with -100 on the prompt and on padding.

    The model shifts labels by one itself, so label t is the token at t: the first answer
    token (at `prompt_length`) keeps its label and is predicted from the last prompt token.
    """
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # 0 .. T-1
    in_prompt = positions[None, :] < prompt_lengths[:, None]  # (batch, T): True on the prompt
    return input_ids.masked_fill(in_prompt | (attention_mask == 0), -100)  # -100: no loss here


def encode_instructions(examples: Sequence[dict], tokenizer, max_length: int,
                        mask=mask_prompt) -> list[dict[str, list[int]]]:
    """Token ids, attention mask and labels (-100 on the prompt) for each example.

    Prompt and answer are tokenized apart and joined, so the prompt ends exactly where the
    answer begins. Examples longer than `max_length` tokens are left out. `mask` is the
    function that writes the labels (the lesson's exercise plugs the learner's in).
    """
    rows = []
    for ex in examples:
        prompt = tokenizer(chat_prompt(tokenizer, ex["instruction"]),
                           add_special_tokens=False)["input_ids"]
        answer = tokenizer(chat_answer(tokenizer, ex["answer"]), add_special_tokens=False)["input_ids"]
        ids = prompt + answer
        if len(ids) > max_length:
            continue
        tensor = torch.tensor([ids])
        labels = mask(tensor, torch.tensor([len(prompt)]), torch.ones_like(tensor))
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids),
                     "labels": labels[0].tolist()})
    return rows


def pad_batch(rows: Sequence[dict[str, Sequence[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a list of encoded examples: ids with `pad_id`, labels with -100, mask with 0."""
    width = max(len(r["input_ids"]) for r in rows)
    fill = {"input_ids": pad_id, "attention_mask": 0, "labels": IGNORE}
    return {key: torch.tensor([list(r[key]) + [value] * (width - len(r[key])) for r in rows])
            for key, value in fill.items() if key in rows[0]}


class SFTCollator:
    """`collate_fn` for `fit`: pads a batch of `encode_instructions` rows."""

    def __init__(self, tokenizer) -> None:
        self.pad_id = tokenizer.pad_token_id

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        return pad_batch(rows, self.pad_id)


# ------------------------------------------------------------------------- measuring ---

@torch.no_grad()
def answer_loss(model, rows: Sequence[dict], pad_id: int, batch_size: int = 16) -> float:
    """Mean cross-entropy per answer token (nats) over encoded examples: what SFT lowers.

    A dry run (`llm_course.env.dry_run`) measures the first batch only.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for part in dry_run.batch_slices(len(rows), batch_size):
        batch = {k: v.to(device) for k, v in pad_batch(rows[part], pad_id).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        labels = batch["labels"][:, 1:]
        losses = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().transpose(1, 2), labels, ignore_index=IGNORE, reduction="sum")
        total += float(losses)
        count += int((labels != IGNORE).sum())
    model.train(was_training)
    return total / max(count, 1)


@torch.no_grad()
def generate_answers(model, tokenizer, instructions: Sequence[str], max_new_tokens: int = 24,
                     greedy: bool = True, temperature: float = 1.0, seed: int = 0,
                     batch_size: int = 16, chat: bool = True) -> list[str]:
    """The model's answer to each instruction (the new text only, special tokens removed).

    With `chat`, each instruction goes through the tokenizer's chat template first; without,
    the raw text is continued (how a base model is used). Batches are padded on the left, so
    every answer starts right after its own prompt. Seeded, so sampling repeats. A dry run
    (`llm_course.env.dry_run`) generates one batch of 2, at most 8 tokens long, and repeats its
    answers for the rest.
    """
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    limit = getattr(model.config, "n_positions", None) or getattr(
        model.config, "max_position_embeddings", 10**9)
    torch.manual_seed(seed)
    options = {"do_sample": False} if greedy else {"do_sample": True, "temperature": temperature,
                                                    "top_k": 0, "top_p": 1.0}
    answers, max_new_tokens = [], dry_run.new_tokens(max_new_tokens)
    try:
        for part in dry_run.batch_slices(len(instructions), batch_size):
            texts = [chat_prompt(tokenizer, t) if chat else t for t in instructions[part]]
            enc = tokenizer(texts, return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
            width = enc["input_ids"].shape[1]
            if width >= limit:  # keep the end of an over-long prompt: its cue to answer
                enc = {k: v[:, width - limit + 1:] for k, v in enc.items()}
                width = limit - 1
            out = model.generate(**enc, max_new_tokens=min(max_new_tokens, limit - width),
                                 pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id, **options)
            new = out[:, enc["input_ids"].shape[1]:]
            answers += [a.strip() for a in tokenizer.batch_decode(new, skip_special_tokens=True)]
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return dry_run.fill_rows(answers, len(instructions))


def answer_matches(answer: str, label: str, labels: Sequence[str]) -> bool:
    """True if the answer names `label` and no other label ("The review is positive." counts)."""
    words = set(re.findall(r"[a-z]+", answer.lower()))
    return label in words and not (words & (set(labels) - {label}))


def label_accuracy(model, tokenizer, examples: Sequence[dict], max_new_tokens: int = 12,
                   batch_size: int = 16) -> tuple[float, list[str]]:
    """(share of greedy answers that name the right label, the answers) for label kinds."""
    if not examples:
        return float("nan"), []
    answers = generate_answers(model, tokenizer, [ex["instruction"] for ex in examples],
                               max_new_tokens=max_new_tokens, batch_size=batch_size)
    hits = [answer_matches(a, ex["answer"], LABELS[ex["kind"]])
            for a, ex in zip(answers, examples, strict=True)]
    return sum(hits) / len(hits), answers


def sft_scores(model, tokenizer, heldout_rows: Sequence[dict], heldout: Sequence[dict],
               heldout_kind: Sequence[dict], n: int | None = None,
               batch_size: int = 16) -> dict[str, float]:
    """The lesson's three SFT measures, on held-out data only.

    "answer loss": `answer_loss` on the encoded held-out rows; "held-out accuracy":
    `label_accuracy` on the held-out sentiment instructions (a trained kind); "held-out kind
    accuracy": the same on the kind never trained on. `n` caps the examples of each accuracy.
    """
    trained = per_kind(heldout, n)["sentiment"]
    return {"answer loss": answer_loss(model, heldout_rows, tokenizer.pad_token_id, batch_size),
            "held-out accuracy": label_accuracy(model, tokenizer, trained,
                                                batch_size=batch_size)[0],
            "held-out kind accuracy": label_accuracy(model, tokenizer, list(heldout_kind)[:n],
                                                     batch_size=batch_size)[0]}


# ----------------------------------------------------------------------- TRL, offline ---

def trl_offline_args(output_dir: str, **overrides: Any) -> dict[str, Any]:
    """Settings every TRL config in the course gets, so that a trainer never uses the network.

    No logging service (`report_to="none"`), no checkpoints and so no model card, nothing
    pushed to the hub, no progress bar; TRL's usage ping (telemetry) is switched off for the
    process, since it would otherwise try to reach the hub when a trainer is built. A dry run
    (`llm_course.env.dry_run`) caps `max_steps` and the batch sizes at 2, as it does for `fit`.
    """
    from huggingface_hub import constants

    constants.HF_HUB_DISABLE_TELEMETRY = True
    if "max_steps" in overrides:
        overrides["max_steps"] = dry_run.steps(overrides["max_steps"])
    for key in ("per_device_train_batch_size", "per_device_eval_batch_size"):
        if key in overrides:
            overrides[key] = dry_run.rows(overrides[key])
    return {"output_dir": output_dir, "report_to": "none", "save_strategy": "no",
            "push_to_hub": False, "disable_tqdm": True, "dataloader_num_workers": 0,
            "activation_checkpointing": False, **overrides}


def quiet_trainer(trainer):
    """Stop a transformers/TRL trainer from printing a line (or a bar) per logged step; the
    logs are still kept in `trainer.state.log_history`. Returns the trainer."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)
    return trainer
