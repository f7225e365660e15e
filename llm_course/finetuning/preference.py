"""Preference tuning with DPO: pairs ranked by a judge, the DPO loss, and its price in KL
(taught in 06c_instruction_tuning).

The recipe of the lesson, one function per step:

1. `review_prompts`: "Continue this movie review: <opening>" from the sentiment data;
2. `sample_answers` draws several answers per prompt from the SFT model, `judge_scores` has a
   classifier score them (the probability of "positive"), `preference_pairs` keeps the best
   and the worst answer of each prompt as (chosen, rejected);
3. `encode_pairs` and `add_reference_logps` tokenize the pairs and store the frozen
   reference's log-probabilities; `DPOModel` turns the policy into a model whose forward
   returns the DPO loss (`dpo_loss`), so `fit` trains it like any model;
4. `evaluate_policy`: the judge's positive rate on held-out prompts, and what it cost: the KL
   divergence from the reference (`token_kl`) and the perplexity of the answers under it;
   `beta_sweep` repeats training and evaluation for several betas.

The judge is passed in (a classifier and its tokenizer), never loaded here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F

from llm_course.data.loaders import load
from llm_course.env import dry_run
from llm_course.env.scale import resolve_scale
from llm_course.finetuning.instructions import (
    PROMPTS,
    chat_answer,
    chat_prompt,
    generate_answers,
    review_opening,
)

# ---------------------------------------------------------------------------- prompts ---


def review_prompts(scale: str | None = None, n_train: int = 200, n_heldout: int = 100,
                   seed: int = 0) -> dict[str, list[str]]:
    """{"train", "heldout"}: "Continue this movie review: <opening>" instructions.

    Training prompts open reviews of the train split, held-out ones reviews of the test
    split; an opening that is in both (short openings repeat) stays out of the held-out set.
    """
    data = load("sentiment", scale=resolve_scale(scale))
    g = torch.Generator().manual_seed(seed)
    out: dict[str, list[str]] = {}
    for name, split, n in (("train", "train", n_train), ("heldout", "test", n_heldout)):
        texts = data[split]["text"]
        order = torch.randperm(len(texts), generator=g).tolist()
        prompts, seen = [], set(out.get("train", []))
        for i in order:
            prompt = PROMPTS["continue"].format(text=review_opening(texts[i])[0])
            if prompt not in seen:
                seen.add(prompt)
                prompts.append(prompt)
            if len(prompts) == n:
                break
        out[name] = prompts
    return out


# ------------------------------------------------------------------- pairs from a judge ---


def sample_answers(model, tokenizer, prompts: Sequence[str], k: int = 4,
                   max_new_tokens: int = 20, temperature: float = 1.0, seed: int = 0,
                   batch_size: int = 32) -> list[list[str]]:
    """`k` sampled answers for each prompt (a list of k strings per prompt)."""
    flat = generate_answers(model, tokenizer, [p for p in prompts for _ in range(k)],
                            max_new_tokens=max_new_tokens, greedy=False, temperature=temperature,
                            seed=seed, batch_size=batch_size)
    return [flat[i * k:(i + 1) * k] for i in range(len(prompts))]


@torch.no_grad()
def judge_scores(judge, judge_tokenizer, texts: Sequence[str], label: str = "positive",
                 batch_size: int = 64) -> torch.Tensor:
    """The judge's probability of `label` for each text (a classifier as the reward model).

    A dry run (`llm_course.env.dry_run`) scores one batch and repeats its scores for the rest.
    """
    index = judge.config.label2id[label]
    judge.eval()
    device = next(judge.parameters()).device
    scores = []
    for part in dry_run.batch_slices(len(texts), batch_size):
        enc = judge_tokenizer(list(texts[part]), return_tensors="pt", padding=True,
                              truncation=True, max_length=128).to(device)
        scores.append(judge(**enc).logits.float().softmax(-1)[:, index].cpu())
    return dry_run.fill_rows(torch.cat(scores), len(texts)) if scores else torch.zeros(0)


def preference_pairs(prompts: Sequence[str], answers: Sequence[Sequence[str]],
                     scores: torch.Tensor, min_margin: float = 0.0) -> list[dict[str, Any]]:
    """For each prompt, its best-scored answer as "chosen" and its worst as "rejected".

    `scores` holds one score per answer, in the order of `answers` flattened. Pairs whose
    scores differ by less than `min_margin` are dropped: a near tie teaches nothing. A dry
    run (`llm_course.env.dry_run`) keeps every prompt's pair: its answers and its judge come
    from 2 training steps, so no margin means anything, and DPO must still get pairs.
    """
    pairs, start, keep_all = [], 0, dry_run.is_dry_run()
    for prompt, group in zip(prompts, answers, strict=True):
        s = scores[start:start + len(group)]
        start += len(group)
        best, worst = int(s.argmax()), int(s.argmin())
        if keep_all or (float(s[best] - s[worst]) >= min_margin and group[best] != group[worst]):
            pairs.append({"prompt": prompt, "chosen": group[best], "rejected": group[worst],
                          "chosen_score": float(s[best]), "rejected_score": float(s[worst])})
    return pairs


# --------------------------------------------------------------------------- tokenizing ---


def encode_pairs(pairs: Sequence[dict], tokenizer,
                 max_length: int | None = None) -> list[dict[str, list[int]]]:
    """Token ids of each pair: the chat prompt, and each answer with its end-of-turn marker.

    Answers are cut so that prompt + answer fits in `max_length` tokens; a pair whose prompt
    alone fills it is left out. TRL's DPOTrainer, given the `trl_pairs` text and the same
    `max_length`, tokenizes and cuts them the same way.
    """
    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    rows = []
    for p in pairs:
        prompt = ids(chat_prompt(tokenizer, p["prompt"]))
        room = None if max_length is None else max_length - len(prompt)
        if room is not None and room <= 0:
            continue
        rows.append({"prompt_ids": prompt, "chosen_ids": ids(chat_answer(tokenizer, p["chosen"]))[:room],
                     "rejected_ids": ids(chat_answer(tokenizer, p["rejected"]))[:room]})
    return rows


def trl_pairs(pairs: Sequence[dict], tokenizer) -> list[dict[str, str]]:
    """The same pairs as text, the way TRL's DPOTrainer takes them ("standard" format)."""
    return [{"prompt": chat_prompt(tokenizer, p["prompt"]),
             "chosen": chat_answer(tokenizer, p["chosen"]),
             "rejected": chat_answer(tokenizer, p["rejected"])} for p in pairs]


def _join(prompts: Sequence[list[int]], answers: Sequence[list[int]],
          pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded prompt+answer ids, attention mask, and a mask of the answer tokens."""
    seqs = [p + a for p, a in zip(prompts, answers, strict=True)]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)
    answer = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (p, s) in enumerate(zip(prompts, seqs, strict=True)):
        ids[i, :len(s)] = torch.tensor(s)
        attention[i, :len(s)] = 1
        answer[i, len(p):len(s)] = 1
    return {"input_ids": ids, "attention_mask": attention, "completion_mask": answer}


class PairCollator:
    """`collate_fn` for `fit`: chosen_* and rejected_* tensors (and the reference log-probs)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        batch = {}
        for side in ("chosen", "rejected"):
            joined = _join([r["prompt_ids"] for r in rows], [r[f"{side}_ids"] for r in rows],
                           self.pad_id)
            batch.update({f"{side}_{k}": v for k, v in joined.items()})
            if f"ref_{side}_logps" in rows[0]:
                batch[f"ref_{side}_logps"] = torch.tensor([r[f"ref_{side}_logps"] for r in rows])
        return batch


# ------------------------------------------------------------------- log-probabilities ---


def sequence_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      completion_mask: torch.Tensor) -> torch.Tensor:
    """log p(answer | prompt) for each row: the answer tokens' log-probabilities, summed."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float()
    targets = input_ids[:, 1:]
    token_logps = torch.gather(logits.log_softmax(-1), 2, targets.unsqueeze(-1)).squeeze(-1)
    return (token_logps * completion_mask[:, 1:]).sum(-1)


@torch.no_grad()
def add_reference_logps(reference, rows: list[dict], pad_id: int,
                        batch_size: int = 32) -> list[dict]:
    """Store log p_ref(chosen) and log p_ref(rejected) in each row: the reference is frozen,
    so its log-probabilities are computed once, before training. A dry run
    (`llm_course.env.dry_run`) computes one batch; the other rows borrow its numbers in turn."""
    reference.eval()
    device = next(reference.parameters()).device
    collate = PairCollator(pad_id)
    out = []
    for where in dry_run.batch_slices(len(rows), batch_size):
        part = rows[where]
        batch = {k: v.to(device) for k, v in collate(part).items()}
        logps = {side: sequence_logprobs(reference, batch[f"{side}_input_ids"],
                                         batch[f"{side}_attention_mask"],
                                         batch[f"{side}_completion_mask"]).cpu()
                 for side in ("chosen", "rejected")}
        out += [{**row, "ref_chosen_logps": float(logps["chosen"][j]),
                 "ref_rejected_logps": float(logps["rejected"][j])} for j, row in enumerate(part)]
    borrowed = dry_run.fill_rows(out, len(rows))  # the rows themselves in a real run
    return [{**row, "ref_chosen_logps": b["ref_chosen_logps"],
             "ref_rejected_logps": b["ref_rejected_logps"]} for row, b in zip(rows, borrowed, strict=True)]


# ------------------------------------------------------------------------ the DPO loss ---


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
             beta: float) -> torch.Tensor:
    """The DPO loss, averaged over pairs: -log sigmoid(beta * (chosen margin - rejected margin)).

    Each margin is how much more likely the policy makes an answer than the reference does,
    log pi(y|x) - log pi_ref(y|x); beta * margin is DPO's implicit reward.
    """
    chosen = policy_chosen_logps - ref_chosen_logps
    rejected = policy_rejected_logps - ref_rejected_logps
    return -F.logsigmoid(beta * (chosen - rejected)).mean()


def disable_dropout(model: torch.nn.Module) -> None:
    """Set every dropout probability to 0 (TRL's DPOTrainer does the same by default)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


class DPOModel(torch.nn.Module):
    """The policy, with a forward that returns the DPO loss of a batch of pairs.

    `fit` calls `model(**batch)` and reads `.loss`; batches come from `PairCollator` over
    rows with reference log-probs (`add_reference_logps`). `loss_fn` is `dpo_loss` or
    the learner's version of it. The policy's dropout is switched off, so that at the start
    policy and reference agree exactly (loss log 2). `last` keeps the latest batch's mean
    implicit rewards.
    """

    def __init__(self, policy: torch.nn.Module, beta: float, loss_fn: Callable = dpo_loss) -> None:
        super().__init__()
        disable_dropout(policy)  # else the policy's log-probs differ from the reference's at step 0
        self.policy, self.beta, self.loss_fn = policy, beta, loss_fn
        self.last: dict[str, float] = {}

    def forward(self, **batch: torch.Tensor) -> SimpleNamespace:
        logps = {side: sequence_logprobs(self.policy, batch[f"{side}_input_ids"],
                                         batch[f"{side}_attention_mask"],
                                         batch[f"{side}_completion_mask"])
                 for side in ("chosen", "rejected")}
        loss = self.loss_fn(logps["chosen"], logps["rejected"], batch["ref_chosen_logps"],
                            batch["ref_rejected_logps"], self.beta)
        with torch.no_grad():
            chosen = self.beta * (logps["chosen"] - batch["ref_chosen_logps"])
            rejected = self.beta * (logps["rejected"] - batch["ref_rejected_logps"])
            self.last = {"reward_chosen": float(chosen.mean()),
                         "reward_rejected": float(rejected.mean()),
                         "reward_accuracy": float((chosen > rejected).float().mean())}
        return SimpleNamespace(loss=loss, logits=None)


# ----------------------------------------------------------------------- the KL price ---


@torch.no_grad()
def token_kl(policy, reference, tokenizer, prompts: Sequence[str], answers: Sequence[str],
             max_length: int | None = None, batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(KL, log p_ref, tokens) per answer: what moving the policy away from the reference costs.

    At each answer token, KL(pi(.|context) || pi_ref(.|context)) over the whole vocabulary,
    summed over the answer; with answers sampled from the policy, the mean estimates the
    KL divergence of the two models' answers (never negative). The second tensor is the
    answers' summed log-probability under the reference, the third their number of tokens
    (together, a perplexity). A dry run (`llm_course.env.dry_run`) computes one batch and
    repeats its numbers for the other answers.
    """
    policy.eval()
    reference.eval()
    device = next(policy.parameters()).device
    pad_id = tokenizer.pad_token_id
    kls, ref_logps, counts = [], [], []
    for part in dry_run.batch_slices(len(prompts), batch_size):
        rows = encode_pairs([{"prompt": p, "chosen": a, "rejected": a} for p, a in
                             zip(prompts[part], answers[part], strict=True)],
                            tokenizer, max_length)
        batch = {k: v.to(device) for k, v in _join([r["prompt_ids"] for r in rows],
                                                   [r["chosen_ids"] for r in rows],
                                                   pad_id).items()}
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        logp = policy(**inputs).logits[:, :-1].float().log_softmax(-1)
        logq = reference(**inputs).logits[:, :-1].float().log_softmax(-1)
        mask = batch["completion_mask"][:, 1:].float()
        kls.append(((logp.exp() * (logp - logq)).sum(-1) * mask).sum(-1).cpu())
        targets = batch["input_ids"][:, 1:].unsqueeze(-1)
        ref_logps.append((torch.gather(logq, 2, targets).squeeze(-1) * mask).sum(-1).cpu())
        counts.append(mask.sum(-1).cpu())
    return tuple(dry_run.fill_rows(torch.cat(t), len(prompts)) for t in (kls, ref_logps, counts))


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Unique word n-grams over all n-grams in `texts`: low when the model repeats itself."""
    grams = [tuple(t.split()[i:i + n]) for t in texts for i in range(len(t.split()) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def evaluate_policy(policy, reference, tokenizer, judge, judge_tokenizer,
                    prompts: Sequence[str], k: int = 1, max_new_tokens: int = 20,
                    seed: int = 0, batch_size: int = 32) -> dict[str, Any]:
    """Sample answers to held-out prompts and measure them.

    positive_rate: share of answers the judge calls positive (p > 0.5); mean_score: the mean
    p(positive); kl: mean KL to the reference per answer (nats); ref_perplexity: the
    reference model's perplexity on the answers; distinct2: diversity of the answers.
    """
    answers = [a for group in sample_answers(policy, tokenizer, prompts, k, max_new_tokens,
                                             seed=seed, batch_size=batch_size) for a in group]
    flat_prompts = [p for p in prompts for _ in range(k)]
    scores = judge_scores(judge, judge_tokenizer, answers)
    limit = getattr(policy.config, "n_positions", None) or getattr(
        policy.config, "max_position_embeddings", None)
    kl, ref_logps, counts = token_kl(policy, reference, tokenizer, flat_prompts, answers, limit,
                                     batch_size)
    tokens = counts.sum().clamp(min=1)
    return {"positive_rate": float((scores > 0.5).float().mean()),
            "mean_score": float(scores.mean()), "kl": float(kl.mean()),
            "ref_perplexity": float(torch.exp(-ref_logps.sum() / tokens)),
            "distinct2": distinct_n(answers), "prompts": flat_prompts, "answers": answers,
            "scores": scores.tolist(), "kls": kl.tolist()}


def beta_sweep(sft_model, betas: Sequence[float], train: Callable[[torch.nn.Module, float], Any],
               measure: Callable[[torch.nn.Module], dict]) -> list[dict[str, Any]]:
    """For each beta: a fresh copy of the SFT model, `train(copy, beta)`, then `measure(copy)`.

    Returns one row per beta: {"beta", **what measure returned, "model": the trained copy}.
    """
    rows = []
    for beta in betas:
        policy = copy.deepcopy(sft_model)
        train(policy, beta)
        rows.append({"beta": beta, **measure(policy), "model": policy})
    return rows
