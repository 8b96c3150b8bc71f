"""The stages of a model trained in steps: each run started from another ``.segmodel``
carries that model's stages forward in its card (``training.stages``), so the card of the
last stage states the whole recipe.
"""
from __future__ import annotations

from typing import Any

from seg_perception.model.model_file import ModelCard
from seg_perception.training.config import TrainConfig


def previous_stages(init_card: ModelCard | None) -> list[dict[str, Any]]:
    """The stages of the model a run starts from: its card's ``training.stages``, or one
    stage made from its card's training record; ``[]`` without a card (hed, imagenet,
    none) or without a training record.
    """
    if init_card is None or not init_card.training:
        return []
    t = init_card.training
    if t.get('stages'):
        return [dict(s) for s in t['stages']]
    return [{'stage': 1, 'command': t.get('command', ''), 'init': t.get('init', ''),
             **({'selected_epoch': t['epoch']} if 'epoch' in t else {})}]


def stage_record(config: TrainConfig, init_card: ModelCard | None, command: str,
                 epoch: int | None) -> dict[str, Any]:
    """Card fields for a run's ``training``: ``stages`` (the init model's, then this run's)
    and, for a run started from a model file, ``init`` naming that model's stage.

    Args:
        config: this run's configuration.
        init_card: the card of ``config.model.init`` when it is a model file, else ``None``.
        command: this run's command line.
        epoch: the selected epoch (1-based), ``None`` without validation.
    """
    before = previous_stages(init_card)
    n = len(before) + 1
    this = {'stage': n, 'command': command,
            'init': f'stage {n - 1}' if before else config.model.init,
            'steps': config.optim.epochs * config.optim.steps_per_epoch,
            **({'selected_epoch': epoch} if epoch is not None else {})}
    out: dict[str, Any] = {'stages': [*before, this]}
    if before:
        out['init'] = (f'the stage-{n - 1} model ({before[-1].get("command", "")}): '
                       f'{config.model.init}')
    return out
