"""Submission order is the law: random sequences of intents on one resource, run through the
real worker against a served emulator on both stores, folded into one write or run one by one,
end where applying them one by one in order ends (the sequential model)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from writer_env import NSG, Env

from armguard.coordinator.intents import (
    BodyIntent,
    MergeIntent,
    PutIntent,
    TagsIntent,
    merge_patch,
)
from armguard.coordinator.model import Outcome

KEYS = st.sampled_from(["a", "b", "c", "d"])
VALUES = st.sampled_from(["1", "2"])

tags_intents = st.builds(
    lambda set_, remove: TagsIntent(set_, tuple(k for k in remove if k not in set_)),
    st.dictionaries(KEYS, VALUES, min_size=1, max_size=3),
    st.lists(KEYS, max_size=2, unique=True),
)
untag_intents = st.builds(
    lambda keys: TagsIntent({}, tuple(keys)), st.lists(KEYS, min_size=1, max_size=2, unique=True)
)
merge_intents = st.builds(
    lambda patch: MergeIntent({"tags": patch}),
    st.dictionaries(KEYS, st.one_of(VALUES, st.none()), min_size=1, max_size=3),
)
put_intents = st.builds(
    lambda tags: PutIntent({"location": "eastus", "tags": tags}),
    st.dictionaries(KEYS, VALUES, max_size=3),
)
intents = st.lists(
    st.one_of(tags_intents, untag_intents, merge_intents, put_intents), min_size=1, max_size=6
)
start_tags = st.dictionaries(KEYS, VALUES, max_size=3)


def sequential(tags: dict[str, str], sequence: list[BodyIntent]) -> dict[str, str]:
    """The model: each intent applied to the result of the one before, in order."""
    body: dict[str, Any] = {"location": "eastus", "tags": dict(tags)}
    for intent in sequence:
        if isinstance(intent, MergeIntent):
            body = merge_patch(body, intent.patch)
        elif isinstance(intent, PutIntent):
            body = dict(intent.body)
        else:
            body = intent.apply(body)
    return dict(body.get("tags") or {})


def live_tags(env: Env) -> dict[str, str]:
    return dict(env.get(NSG).get("tags") or {})


def reset(env: Env, tags: dict[str, str]) -> None:
    env.put(NSG, {"location": "eastus", "tags": tags})
    env.settle()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(start=start_tags, sequence=intents, folded=st.booleans())
def test_folded_or_not_the_result_is_the_sequential_one(
    env: Env, start: dict[str, str], sequence: list[BodyIntent], folded: bool
) -> None:
    reset(env, start)
    jobs = []
    for n, intent in enumerate(sequence):
        jobs.append(env.submit(NSG, intent, who=f"writer-{n}"))
        if not folded:
            env.run()
    if folded:
        env.run()
    assert live_tags(env) == sequential(start, sequence)
    for job in jobs:
        done = env.job(job)
        assert done.outcome in (Outcome.APPLIED, Outcome.ALREADY_SATISFIED), done.reason


def test_fifteen_resources_four_loops_mixed_puts_and_tags_end_as_the_model(env: Env) -> None:
    """The adversarial run's shape: puts and tag merges mixed on 15 resources, submitted
    interleaved, drained by four concurrent loops. Every resource ends where its own
    sequence, applied in submission order, ends."""
    import random

    rng = random.Random(16)
    sequences: dict[str, list[BodyIntent]] = {}
    starts: dict[str, dict[str, str]] = {}
    for n in range(15):
        rid = NSG.replace("nsg1", f"nsg-mixed-{n}")
        starts[rid] = {"env": "prod"}
        env.put(rid, {"location": "eastus", "tags": starts[rid]})
        sequences[rid] = [
            rng.choice(
                [
                    TagsIntent({rng.choice("abcd"): rng.choice("12")}),
                    MergeIntent({"tags": {rng.choice("abcd"): rng.choice(["1", "2", None])}}),
                    PutIntent({"location": "eastus", "tags": {rng.choice("abcd"): "p"}}),
                    TagsIntent({}, (rng.choice("abcd"),)),
                ]
            )
            for _ in range(8)
        ]
    env.settle()
    jobs = []
    for step in range(8):  # interleaved across resources, as many writers would submit
        for rid, sequence in sequences.items():
            jobs.append(env.submit(rid, sequence[step], who=f"writer-{step}"))
    env.run(concurrency=4)
    for rid, sequence in sequences.items():
        assert dict(env.get(rid).get("tags") or {}) == sequential(starts[rid], sequence), rid
    for job in jobs:
        assert env.job(job).outcome in (Outcome.APPLIED, Outcome.ALREADY_SATISFIED)
