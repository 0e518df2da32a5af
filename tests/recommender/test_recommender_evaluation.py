"""The offline evaluation: a reproducible population, splits that cannot leak, the table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import replace
from datetime import datetime

import pytest

from recommender import evaluation
from recommender.data import Interaction, Recommendation, RecommenderWeights, UserProfile
from recommender.evaluation import REPLAY_GUARD, evaluate_split, make_split
from recommender.hybrid import FittedModel, LiveState, Recommender
from recommender.synthetic import Population, PopulationParams, generate

SMALL = PopulationParams(
    seed=3, users=400, mentors=25, sessions=150, topics=6, interactions=6000, days=40
)


@pytest.fixture(scope="module")
def population() -> Population:
    return generate(SMALL)


def test_population_is_reproducible_and_seed_dependent(population: Population) -> None:
    again = generate(SMALL).snapshot
    assert again.interactions == population.snapshot.interactions
    assert again.sessions == population.snapshot.sessions
    other = generate(replace(SMALL, seed=4)).snapshot
    assert other.interactions != population.snapshot.interactions
    kinds = {i.kind for i in population.snapshot.interactions}
    assert kinds == {"view", "booking", "completion", "rating"}


def test_split_trains_on_the_past_and_tests_on_new_sessions(population: Population) -> None:
    split = make_split(population.snapshot, 0.75, 0.15, seed=3)
    assert split.warm and split.cold
    assert all(i.at < split.cutoff for i in split.train.interactions)
    trained_on = {i.session_id for i in split.train.interactions}
    assert not trained_on & split.candidates  # test sessions did not exist in training
    for relevant in (*split.warm.values(), *split.cold.values()):
        assert relevant <= split.candidates
    train_users = {i.user_id for i in split.train.interactions}
    assert not train_users & set(split.cold)  # cold-start users lost their whole history
    # Seats taken are those of the training period, not the final ones.
    booked = Counter(i.session_id for i in split.train.interactions if i.kind == "booking")
    cold_booked = Counter(
        i.session_id
        for i in population.snapshot.interactions
        if i.at < split.cutoff and i.kind == "booking" and i.user_id in split.cold_users
    )
    for s in split.train.sessions:
        assert s.current_participants == booked[s.id] + cold_booked[s.id]


def test_live_protocol_never_replays_the_visit_behind_a_query(
    population: Population, monkeypatch: pytest.MonkeyPatch
) -> None:
    split = make_split(population.snapshot, 0.75, 0.15, seed=3)
    replayed: list[Interaction] = []
    original = LiveState.record

    def spy(self: LiveState, model: FittedModel, it: Interaction) -> None:
        replayed.append(it)
        original(self, model, it)

    asked: list[tuple[int | None, datetime, int]] = []
    real = Recommender.recommend_sessions

    def ask(
        self: Recommender,
        user_id: int | None,
        k: int = 10,
        booked_ids: Iterable[str] = (),
        now: datetime | None = None,
        profile: UserProfile | None = None,
        candidate_ids: Collection[str] | None = None,
    ) -> list[Recommendation]:
        assert now is not None  # the evaluation always ranks at a given time
        asked.append((user_id, now, len(replayed)))
        return real(self, user_id, k, booked_ids, now, profile, candidate_ids)

    monkeypatch.setattr(LiveState, "record", spy)
    monkeypatch.setattr(Recommender, "recommend_sessions", ask)
    results = evaluate_split(split, RecommenderWeights(), protocols=("live",))
    assert asked and {r.split for r in results} == {"temporal, live", "cold-start, live"}
    for user_id, now, n_seen in asked:
        seen = replayed[:n_seen]
        assert all(it.at < now - REPLAY_GUARD for it in seen)
        if user_id in split.cold:
            assert not any(it.user_id == user_id for it in seen)
    assert not any(it.user_id in split.cold_users for it in replayed)


def test_cli_prints_the_table_for_every_method(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--seed",
        "3",
        "--users",
        "400",
        "--mentors",
        "25",
        "--sessions",
        "150",
        "--topics",
        "6",
        "--interactions",
        "6000",
        "--days",
        "40",
    ]
    assert evaluation.main(argv) == 0
    out = capsys.readouterr().out
    for split in ("temporal", "cold-start", "temporal, live", "cold-start, live"):
        for method in ("popularity", "content", "collaborative", "hybrid"):
            assert f"| {split} | {method} |" in out
    assert "NDCG@10" in out and "goals (frozen):" in out and "goals (live):" in out


def test_database_option_needs_the_app(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        evaluation.main(["--database"])
    assert "peerlearn recommender-eval" in capsys.readouterr().err


def test_the_check_grid_is_the_issues_and_unseen() -> None:
    grid = evaluation.CHECK_GRID
    assert len(grid) == 8 and len(set(grid)) == 8
    assert {g[0] for g in grid} == {0.0, PopulationParams().level_weight}
    assert {g[1] for g in grid} == {1.0, 1.5} and {g[2] for g in grid} == {12, 20}
    assert len(evaluation.CHECK_SEEDS) == 3
    assert not set(evaluation.CHECK_SEEDS) & evaluation.SEEDS_LOOKED_AT
    assert {3, 5, 7, 11, 101, 202, 303} <= evaluation.SEEDS_LOOKED_AT


@pytest.mark.slow
def test_the_fast_subset_of_the_check_grid_meets_the_goals() -> None:
    """Two full-size populations of the grid (the full grid is ``recommender-eval --check``,
    minutes of CPU): the hybrid >= the best single component and >= 2x popularity."""
    grid, seeds = evaluation.CHECK_FAST
    lines: list[str] = []
    rows = evaluation.run_check(RecommenderWeights(), grid=grid, seeds=seeds, out=lines.append)
    assert len(rows) == 2
    assert not [r.failed for r in rows if r.failed], "\n".join(lines)


def test_run_check_prints_a_row_per_population_and_the_paired_error() -> None:
    lines: list[str] = []
    rows = evaluation.run_check(
        RecommenderWeights(),
        grid=[(0.0, 1.0, 6), (1.0, 1.5, 6)],
        seeds=[1],
        base=SMALL,
        out=lines.append,
    )
    assert len(rows) == 2
    for r in rows:
        assert set(r.ndcg) == set(evaluation.METHODS) and r.users > 0 and r.se >= 0
        assert r.best in ("popularity", "content", "collaborative")
        assert bool(r.failed) == (r.ndcg["hybrid"] < r.ndcg[r.best] or r.ratio < 2)
    table = "\n".join(lines)
    assert "paired s.e." in table and table.count("| 6 | 1 |") == 2
    assert "goals (hybrid >= best single and >= 2x popularity" in lines[-1]


def test_check_exits_1_when_a_population_misses_a_goal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ndcg = {"popularity": 0.02, "content": 0.06, "collaborative": 0.07, "hybrid": 0.065}
    row = evaluation.CheckRow(SMALL, ndcg, "collaborative", -0.005, 0.004, 100)
    assert row.failed == ["below collaborative"]
    monkeypatch.setattr(evaluation, "run_check", lambda weights: [row])
    assert evaluation.main(["--check"]) == 1
    good = replace(row, ndcg={**ndcg, "hybrid": 0.08}, gain=0.01)
    assert not good.failed
    monkeypatch.setattr(evaluation, "run_check", lambda weights: [good])
    assert evaluation.main(["--check"]) == 0
    assert "fixed grid" in capsys.readouterr().out
