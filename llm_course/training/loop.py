"""`fit`: the training loop of the course (taught in 00_setup; lessons 02-09 train with it).

00_setup shows it on a tiny model, 02 and 03 pretrain a GPT and a BERT with it, 05 fine-tunes
pretrained models. Read `fit` from top to bottom: a short set-up, then one loop in which each
pass is one optimizer step:

1. take `grad_accum` micro-batches (the step's batch);
2. run forward and backward on each (mixed precision comes from accelerate's autocast),
   adding up the gradients;
3. clip the gradients, stop if anything diverged, update the weights, advance the schedule;
4. log, evaluate, checkpoint.

Gradient accumulation is exact. HF models return the *mean* loss over the items of a batch:
the predicted tokens of a causal LM (labels other than -100, after the shift by one), the
labelled tokens for masked LM and NER, the examples for classification. Micro-batches can
hold different numbers of items (padding, masking), so averaging their means would weight a
short micro-batch too much. Instead each micro-batch's loss is multiplied by
`items_in_micro_batch / items_in_step`: the sum is then the mean over every item of the
step, and the gradient equals that of one big batch (tested to ~1e-6 in fp32).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch

from llm_course.env import dry_run
from llm_course.training.batches import batches_per_epoch, micro_batches, total_steps_for
from llm_course.training.checkpoint import resume_checkpoint, save_checkpoint
from llm_course.training.compilation import compile_plan, should_compile, try_compile
from llm_course.training.config import TrainConfig
from llm_course.training.cost import compute_receipt, estimate_memory, format_receipt
from llm_course.training.data_checks import DataError, check_first_batches
from llm_course.training.divergence import TrainingDiverged, divergence
from llm_course.training.evaluate import (
    Metrics,
    count_items,
    count_tokens,
    evaluate,
    infer_task,
    is_causal_lm,
    prepare_batch,
)
from llm_course.training.history import History
from llm_course.training.live_plot import LOWER_IS_BETTER, LiveView, in_notebook
from llm_course.training.optimizer import make_optimizer, make_scheduler, optimizer_state_bytes
from llm_course.training.precision import choose_precision, make_accelerator
from llm_course.training.tensorboard import tensorboard_writer, write_scalars

__all__ = ["fit", "TrainConfig", "TrainingDiverged", "DataError", "History"]


def fit(
    model: torch.nn.Module,
    train_dataset: Any,
    eval_dataset: Any = None,
    *,
    config: TrainConfig,
    collate_fn: Callable[[list], dict] | None = None,
    metrics: Metrics = None,
    resume: bool = False,
) -> History:
    """Train `model` on `train_dataset` as `config` says; return the `History`.

    `model` is an HF-style model: `model(**batch)` returns an object with `.loss` and
    `.logits`; batches are dicts of tensors (use `collate_fn` to pad or mask). With
    `eval_dataset`, it is evaluated every `config.eval_every` steps and at the end (plus
    `metrics`, see `llm_course.training.evaluate`). `resume=True` continues from the newest usable
    checkpoint in `config.output_dir` (damaged ones are reported and skipped). Raises
    `TrainingDiverged` if the loss becomes NaN/inf or explodes, `DataError` (before any
    step) if the first batch holds ids, lengths or labels the model cannot take.
    The model is left on the training device in eval mode. In a dry run
    (`llm_course.env.dry_run`) it stops after 2 optimizer steps and evaluates one batch.
    """
    cfg = config.validate(resume=resume)  # resume=True without output_dir: ConfigError
    writer = tensorboard_writer(cfg)  # fails now, not after an hour, if tensorboard is missing

    # -- set-up: device, precision, seed, data, optimizer ------------------------------------
    precision, why = choose_precision(cfg.precision)
    accelerator = make_accelerator(precision)
    device, world, main = accelerator.device, accelerator.num_processes, accelerator.is_main_process
    say = print if main else _quiet
    chatty = say if cfg.verbose else _quiet  # verbose=False keeps to what went wrong
    chatty(f"precision: {precision} ({why})")
    _seed_everything(cfg.seed)
    model.to(device)
    train_model = model if world == 1 else accelerator.prepare_model(model)  # DDP under launch
    task = cfg.task or infer_task(model)
    causal = is_causal_lm(model)
    train_dataset, eval_dataset = _torch_format(train_dataset, collate_fn), _torch_format(
        eval_dataset, collate_fn)
    per_epoch = batches_per_epoch(train_dataset, cfg.batch_size, world)
    planned = total_steps_for(cfg, per_epoch)
    total_steps = dry_run.steps(planned)  # 2 in a dry run
    optimizer = accelerator.prepare_optimizer(make_optimizer(model, cfg, device.type, precision))
    scheduler = make_scheduler(optimizer, cfg, total_steps)
    eval_every = cfg.eval_every if cfg.eval_every is not None else max(1, total_steps // 10)
    log_every = cfg.log_every or max(1, min(50, total_steps // 100))
    history = History(precision=precision, precision_reason=why, total_steps=total_steps, config=cfg)
    if total_steps < planned:
        chatty(f"dry run: {total_steps} of {planned} steps (LLM_COURSE_DRY_RUN is set)")

    history.memory = estimate_memory(model, cfg, device=str(device), seq_len=_seq_len(train_dataset))
    if history.memory["hopeless"]:
        raise MemoryError(history.memory["message"])
    if not history.memory["fits"]:
        warnings.warn(history.memory["message"], stacklevel=2)

    state = _fresh_state()
    best_weights: dict[str, torch.Tensor] | None = None
    if resume:  # restores weights, optimizer, schedule, RNGs, data position and history
        state, best_weights = _resume(cfg, model, optimizer, scheduler, accelerator, state,
                                      history, say)
    stream = micro_batches(train_dataset, cfg, collate_fn, start=state["micro_batches"],
                           rank=accelerator.process_index, world=world,
                           pin_memory=device.type == "cuda")
    params = [p for p in model.parameters() if p.requires_grad]
    compile_at = compile_plan(cfg, device.type, state["step"], total_steps, history, say)

    from tqdm.auto import tqdm

    pbar = tqdm(total=total_steps, initial=state["step"], desc="training", dynamic_ncols=True,
                disable=not (cfg.progress and main), mininterval=0.5 if sys.stderr.isatty() or in_notebook() else 5)
    view = LiveView("auto" if cfg.plot and main else "none", total_steps,
                    f"{type(model).__name__}, {precision}", write=tqdm.write)
    interval = {"losses": [], "tokens": 0, "seconds": 0.0}
    skipped_in_a_row, stop = 0, state.get("stopped_reason") or None
    model.train()
    first_step, run_start = state["step"], time.perf_counter()

    # -- the loop: one pass = one optimizer step ----------------------------------------------------
    for step in range(state["step"], total_steps if stop is None else state["step"]):
        t0 = time.perf_counter()
        # 1. The step's batch: grad_accum micro-batches, and how many items (tokens or
        #    examples) they hold together. Counting happens on the CPU: no device sync.
        micro = [next(stream) for _ in range(cfg.grad_accum)]
        if step == first_step:  # ids, lengths, labels the model can't take: DataError + the fix
            check_first_batches(model, micro, task)
        counts = [count_items(b, causal) for b in micro]
        n_items = _sum_over_processes(sum(counts), accelerator)
        if step == compile_at and should_compile(
                cfg, device.type, (time.perf_counter() - run_start) / max(step - first_step, 1),
                total_steps - step, history, say):
            train_model, history.compiled = try_compile(
                train_model, prepare_batch(micro[0], device), accelerator, say)
        # 2. Forward and backward, one micro-batch at a time; gradients add up in p.grad.
        step_loss = torch.zeros((), device=device)
        for i, (batch, n) in enumerate(zip(micro, counts, strict=True)):
            if n == 0:
                continue  # every label is -100: nothing to learn from this micro-batch
            tokens = count_tokens(batch)
            interval["tokens"] += tokens
            state["tokens"] += tokens
            state["examples"] += len(next(iter(batch.values())))
            batch = prepare_batch(batch, device)
            sync = contextlib.nullcontext() if i == len(micro) - 1 else accelerator.no_sync(train_model)
            with sync:  # under DDP, average gradients across processes only once per step
                with accelerator.autocast():  # bf16/fp16 where chosen, fp32 otherwise
                    out = train_model(**batch)
                if out.loss is None:
                    raise ValueError(_NO_LOSS)
                # out.loss is the mean over this micro-batch's n items: weight it by its share
                # of the step's items, so the sum is the mean over the whole step (see above).
                loss = out.loss * (n * world / n_items)
                accelerator.backward(loss)
            step_loss += loss.detach()
        # 3. Clip, check, update. `.tolist()` is the one wait for the device in a step.
        grad_norm = accelerator.clip_grad_norm_(params, cfg.max_grad_norm or math.inf)
        if world > 1:  # each process holds world x its share: the mean is the step's loss
            step_loss = accelerator.reduce(step_loss, "mean")
        loss_value, norm_value = torch.stack([step_loss.float(), grad_norm.float()]).tolist()
        problem = divergence(loss_value, norm_value, state, cfg, precision, task, step + 1,
                             skipped_in_a_row, model=model, batches=micro)
        if problem:  # raised before optimizer.step(): the weights are those of the last good step
            pbar.close()
            raise TrainingDiverged(f"Training diverged: {problem}. No update was applied with "
                                   "these gradients.", history)
        lr = scheduler.get_last_lr()[0]
        optimizer.step()  # in fp16 the GradScaler skips steps whose gradients overflowed
        if optimizer.step_was_skipped:
            skipped_in_a_row += 1
        else:
            scheduler.step()
            skipped_in_a_row = 0
        optimizer.zero_grad(set_to_none=True)

        # 4. Bookkeeping: counts, log, progress bar, evaluation, plot, checkpoint.
        state["step"] = done = step + 1
        state["micro_batches"] += cfg.grad_accum
        if math.isfinite(loss_value):
            state["first_loss"] = state["first_loss"] or loss_value
            state["recent_losses"] = (state["recent_losses"] + [loss_value])[-5:]
        interval["losses"].append(loss_value)
        seconds = time.perf_counter() - t0
        interval["seconds"] += seconds
        state["train_seconds"] += seconds
        pbar.update(1)
        if done % log_every == 0 or done == total_steps:
            row = _log_train(state, interval, lr, norm_value, per_epoch, history, done)
            pbar.set_postfix(loss=f"{row['train_loss']:.4f}", lr=f"{lr:.2e}",
                             recent_tok_s=f"{row['tokens_per_s']:,.0f}", refresh=False)
            write_scalars(writer, row, done)
        if eval_dataset is not None and ((eval_every and done % eval_every == 0)
                                         or done == total_steps):
            with torch.random.fork_rng(devices=_rng_devices(device)):  # eval leaves training's RNG alone
                results = evaluate(model, eval_dataset, task=task, metrics=metrics,
                                   batch_size=cfg.eval_batch_size or cfg.batch_size,
                                   collate_fn=collate_fn, max_batches=cfg.eval_batches,
                                   autocast=accelerator.autocast, device=device)
            results = {f"eval_{k}": v for k, v in results.items()}
            history.log(done, **results)
            write_scalars(writer, results, done)
            stop, new_best = _track_best(state, results, cfg, done)
            if new_best and cfg.early_stopping_patience:
                best_weights = {k: v.detach().to("cpu", copy=True)
                                for k, v in model.state_dict().items()}
        if history.rows and history.rows[-1]["step"] == done:
            view.update(history.rows)
        state["stopped_reason"] = stop
        if cfg.output_dir and main and ((cfg.checkpoint_every and done % cfg.checkpoint_every == 0)
                                        or done == total_steps or stop):
            save_checkpoint(cfg.output_dir, done, model, optimizer, scheduler,
                            {**state, "history": history.rows}, best_weights=best_weights,
                            scaler=accelerator.scaler, keep=cfg.keep_checkpoints,
                            config=cfg.to_dict())
        if cfg.output_dir:
            accelerator.wait_for_everyone()
        if stop:
            break

    # -- the end: best weights, receipt, final plot --------------------------------------------------
    pbar.close()
    history.steps = state["step"]
    history.optimizer_state_bytes = optimizer_state_bytes(optimizer)
    history.best = {**state["best"], "restored": False} if state["best"] else {}
    history.stopped_reason = stop or f"finished: {state['step']} of {total_steps} steps"
    if stop:
        say(stop)
    if cfg.early_stopping_patience and best_weights is not None \
            and state["best"].get("step") != state["step"]:
        model.load_state_dict(best_weights)
        history.best["restored"] = True
        chatty(f"restored the best weights: step {state['best']['step']}, "
            f"{state['best']['metric']} {state['best']['value']:.4g}")
    tokens = _sum_over_processes(state["tokens"], accelerator)
    examples = _sum_over_processes(state["examples"], accelerator)
    if main:
        history.receipt = compute_receipt(
            model, device=str(device), precision=precision, steps=state["step"], tokens=tokens,
            examples=examples, seconds=state["train_seconds"], compiled=history.compiled)
        chatty(format_receipt(history.receipt))
    view.close(history.rows)
    if writer is not None:
        writer.close()
    if world > 1:
        accelerator.unwrap_model(train_model, keep_fp32_wrapper=False)
    model.eval()
    return history


# -- small pieces of the loop ----------------------------------------------------------------------
_NO_LOSS = ("the model returned no loss: batches need a 'labels' field (causal LMs: "
            "labels = input_ids, e.g. DataCollatorForLanguageModeling(tokenizer, mlm=False))")


def _quiet(*args: Any, **kwargs: Any) -> None:
    pass


def _seed_everything(seed: int) -> None:
    from accelerate.utils import set_seed

    set_seed(seed)


def _rng_devices(device: torch.device) -> list:
    return [device] if device.type == "cuda" else []


def _fresh_state() -> dict[str, Any]:
    """The loop's plain-data state: everything a checkpoint needs besides the tensors."""
    return {"step": 0, "micro_batches": 0, "tokens": 0, "examples": 0, "train_seconds": 0.0,
            "first_loss": None, "recent_losses": [], "best": {}, "bad_evals": 0,
            "stopped_reason": None}


def _torch_format(dataset: Any, collate_fn: Callable | None) -> Any:
    """HF datasets hand out Python lists unless told otherwise: ask for tensors."""
    if (dataset is not None and collate_fn is None and hasattr(dataset, "with_format")
            and getattr(dataset, "format", {}).get("type") is None):
        return dataset.with_format("torch")
    return dataset


def _seq_len(dataset: Any) -> int | None:
    try:
        return int(len(dataset[0]["input_ids"]))
    except Exception:  # noqa: BLE001 - only a hint for the memory estimate
        return None


def _sum_over_processes(n: int, accelerator: Any) -> int:
    if accelerator.num_processes == 1:
        return n
    return int(accelerator.reduce(torch.tensor(n, device=accelerator.device), "sum").item())


def _log_train(state: dict, interval: dict, lr: float, grad_norm: float, per_epoch: int | None,
               history: History, step: int) -> dict[str, Any]:
    losses = [v for v in interval["losses"] if math.isfinite(v)]
    row = {
        "epoch": state["micro_batches"] / per_epoch if per_epoch else math.nan,
        "train_loss": sum(losses) / len(losses) if losses else math.nan,
        "lr": lr, "grad_norm": grad_norm, "tokens": state["tokens"],
        "tokens_per_s": interval["tokens"] / max(interval["seconds"], 1e-9),
        "elapsed_s": state["train_seconds"],
    }
    history.log(step, **row)
    interval.update(losses=[], tokens=0, seconds=0.0)
    return row


def _track_best(state: dict, results: dict[str, float], cfg: TrainConfig, step: int
                ) -> tuple[str | None, bool]:
    """Update the best metric; return (early-stopping reason or None, improved?)."""
    key = cfg.best_metric if cfg.best_metric.startswith("eval_") else f"eval_{cfg.best_metric}"
    if key not in results:
        if cfg.early_stopping_patience:
            raise ValueError(f"best_metric={cfg.best_metric!r} is not among the eval metrics "
                             f"({', '.join(sorted(results))})")
        return None, False
    value, best = results[key], state["best"]
    lower = any(word in key for word in LOWER_IS_BETTER)
    improved = not best or (value < best["value"] if lower else value > best["value"])
    if improved:
        state["best"] = {"metric": key, "value": value, "step": step}
        state["bad_evals"] = 0
    else:
        state["bad_evals"] += 1
    patience = cfg.early_stopping_patience
    if patience and state["bad_evals"] >= patience:
        return (f"early stopping at step {step}: {key} did not improve for {patience} "
                f"evaluation(s) (best {state['best']['value']:.4g} at step "
                f"{state['best']['step']})"), improved
    return None, improved


def _resume(cfg: TrainConfig, model: torch.nn.Module, optimizer: Any, scheduler: Any,
            accelerator: Any, state: dict, history: History, say: Callable
            ) -> tuple[dict, dict | None]:
    """Load the newest usable checkpoint (damaged newer ones are reported and skipped)."""
    found = resume_checkpoint(cfg.output_dir, model, optimizer, scheduler,
                              scaler=accelerator.scaler, say=say)
    if found is None:
        say(f"resume: no checkpoint in {cfg.output_dir!r} yet; starting at step 0")
        return state, None
    path, loaded, best_weights = found
    history.rows = list(loaded.pop("history", []))
    state = {**state, **{k: v for k, v in loaded.items() if k in state}}
    say(f"resumed from {path} at step {state['step']}")
    return state, best_weights
