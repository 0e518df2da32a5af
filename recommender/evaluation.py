"""Offline evaluation: temporal split with new items, and a user cold-start split.

Protocol (see docs/recommender.md):

* cutoff = the ``--cutoff-quantile`` of interaction times. The model is fitted on interactions
  before the cutoff, with the catalogue as it stood then (seats taken, statuses, mentor ratings
  recomputed from training data only) plus the metadata of sessions published later.
* temporal split: for every learner with training history, the ground truth is the sessions
  published *after* the cutoff that they booked later; the ranking is over those new sessions.
* cold-start split: ``--cold-fraction`` of learners lose their whole training history (they
  keep their declared skills/interests) and are ranked the same way.
* weights: the defaults of ``RecommenderWeights``, or with ``--tune`` the best of a small grid
  on a validation split cut from the training period only (never the test period).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np

from .data import Interaction, MentorItem, RecommenderWeights, SessionItem, Snapshot
from .hybrid import FittedModel, Recommender, fit_model
from .metrics import coverage, ndcg_at_k, precision_at_k, recall_at_k
from .serialization import load_snapshot
from .synthetic import PopulationParams, generate

K = 10
METHODS: dict[str, tuple[float, float, float] | None] = {
    "popularity": (0.0, 0.0, 1.0),
    "content": (1.0, 0.0, 0.0),
    "collaborative": (0.0, 1.0, 0.0),
    "hybrid": None,  # the weights under evaluation
}


@dataclass(frozen=True)
class MethodResult:
    """Mean metrics of one method on one split."""

    split: str
    method: str
    precision: float
    recall: float
    ndcg: float
    coverage: float
    users: int


@dataclass(frozen=True)
class Split:
    """A fitted-on-the-past snapshot and what users booked among new sessions afterwards."""

    train: Snapshot
    cutoff: datetime
    candidates: frozenset[str]
    warm: dict[int, set[str]]  # user -> relevant new sessions (users with history)
    cold: dict[int, set[str]]  # user -> relevant new sessions (history removed)


def created_at(s: SessionItem, first_seen: dict[str, datetime]) -> datetime:
    """Publication time: explicit, else first interaction, else a week before the schedule."""
    return s.created_at or first_seen.get(s.id) or s.schedule - timedelta(days=7)


def make_split(
    snapshot: Snapshot, quantile: float = 0.75, cold_fraction: float = 0.1, seed: int = 0
) -> Split:
    """Cut a snapshot in time; see the module docstring."""
    inter = sorted(snapshot.interactions, key=lambda i: i.at)
    if not inter:
        raise ValueError("the snapshot has no interactions to split")
    cutoff = inter[min(len(inter) - 1, int(quantile * len(inter)))].at
    first_seen: dict[str, datetime] = {}
    for i in inter:
        first_seen.setdefault(i.session_id, i.at)
    new = {s.id for s in snapshot.sessions if created_at(s, first_seen) >= cutoff}
    past = [i for i in inter if i.at < cutoff]
    future = [i for i in inter if i.at >= cutoff and i.kind == "booking" and i.session_id in new]

    rng = np.random.default_rng(seed)
    user_ids = sorted({u.id for u in snapshot.users} | {i.user_id for i in inter})
    n_cold = int(round(cold_fraction * len(user_ids)))
    cold_users = set(rng.choice(user_ids, size=n_cold, replace=False).tolist()) if n_cold else set()
    with_history = {i.user_id for i in past}

    truth: dict[int, set[str]] = defaultdict(set)
    for i in future:
        truth[i.user_id].add(i.session_id)
    profiles = {u.id: u for u in snapshot.users}
    warm = {u: r for u, r in truth.items() if u not in cold_users and u in with_history}
    cold = {
        u: r for u, r in truth.items()
        if u in cold_users and u in profiles and (profiles[u].skills or profiles[u].interests)
    }
    train = as_of(snapshot, cutoff, past, drop_users=cold_users)
    return Split(train, cutoff, frozenset(new), warm, cold)


def as_of(
    snapshot: Snapshot, cutoff: datetime, past: Sequence[Interaction], drop_users: set[int]
) -> Snapshot:
    """The catalogue as the app would have exported it at ``cutoff`` (no future leaks)."""
    taken = Counter(i.session_id for i in past if i.kind == "booking")
    sessions = [
        replace(
            s,
            status=s.status if s.status == "cancelled" else (
                "completed" if s.schedule < cutoff else "scheduled"
            ),
            current_participants=taken.get(s.id, 0),
        )
        for s in snapshot.sessions
    ]
    ratings: dict[int, list[float]] = defaultdict(list)
    for i in past:
        if i.kind == "rating" and i.value is not None:
            ratings[i.mentor_id].append(i.value)
    mentors = [
        MentorItem(m.id, m.username, m.skills, m.bio,
                   float(np.mean(ratings[m.id])) if ratings.get(m.id) else None,
                   len(ratings.get(m.id, ())))
        for m in snapshot.mentors
    ]
    kept = [i for i in past if i.user_id not in drop_users]
    return Snapshot(snapshot.users, sessions, mentors, kept)


def evaluate_users(
    model: FittedModel,
    weights: RecommenderWeights,
    truth: dict[int, set[str]],
    split_name: str,
    cutoff: datetime,
    candidates: frozenset[str],
    method: str,
) -> MethodResult:
    """Mean P/R/NDCG@10 and coverage for one weighting over the given users."""
    rec = Recommender(model, weights)
    p = r = n = 0.0
    lists = []
    for user_id, relevant in truth.items():
        ranked = [
            x.id for x in rec.recommend_sessions(
                user_id, K, now=cutoff, candidate_ids=candidates
            )
        ]
        lists.append(ranked)
        p += precision_at_k(ranked, relevant, K)
        r += recall_at_k(ranked, relevant, K)
        n += ndcg_at_k(ranked, relevant, K)
    m = max(1, len(truth))
    cov = coverage(lists, len(candidates))
    return MethodResult(split_name, method, p / m, r / m, n / m, cov, len(truth))


def weights_for(method: str, base: RecommenderWeights) -> RecommenderWeights:
    """The base weights, or one component alone."""
    w = METHODS[method]
    if w is None:
        return base
    return replace(base, content=w[0], collaborative=w[1], popularity=w[2])


def evaluate_split(split: Split, base: RecommenderWeights) -> list[MethodResult]:
    """Fit once on the split's past; evaluate each method on both user groups."""
    model = fit_model(split.train, base)
    out = []
    for name, truth in (("temporal", split.warm), ("cold-start", split.cold)):
        for method in METHODS:
            out.append(evaluate_users(
                model, weights_for(method, base), truth, name, split.cutoff,
                split.candidates, method,
            ))
    return out


def validation_split(split: Split, quantile: float, cold_fraction: float, seed: int) -> Split:
    """A split carved from the training period only (what was known at the test cutoff)."""
    known = Snapshot(
        split.train.users,
        [s for s in split.train.sessions if s.id not in split.candidates],
        split.train.mentors,
        split.train.interactions,
    )
    return make_split(known, quantile, cold_fraction, seed + 1)


def tune(split: Split, base: RecommenderWeights, seed: int) -> RecommenderWeights:
    """Pick blend weights on a validation split made from the training period only."""
    val = validation_split(split, 0.75, 0.0, seed)
    model = fit_model(val.train, base)
    best, best_ndcg = base, -1.0
    for c in (0.3, 0.5, 0.7):
        for cf in (0.1, 0.3, 0.5):
            for pop in (0.1, 0.2, 0.4):
                w = replace(base, content=c, collaborative=cf, popularity=pop)
                res = evaluate_users(model, w, val.warm, "validation", val.cutoff,
                                     val.candidates, "hybrid")
                if res.ndcg > best_ndcg:
                    best, best_ndcg = w, res.ndcg
    return best


def render_table(results: Sequence[MethodResult]) -> str:
    """Markdown table of results."""
    lines = [
        "| split | method | P@10 | R@10 | NDCG@10 | coverage | users |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.split} | {r.method} | {r.precision:.4f} | {r.recall:.4f} | {r.ndcg:.4f} "
            f"| {r.coverage:.3f} | {r.users} |"
        )
    return "\n".join(lines)


def check_goals(results: Sequence[MethodResult]) -> list[str]:
    """Goals of the issue; returns the failed ones (empty = all met)."""
    by = {(r.split, r.method): r for r in results}
    failed = []
    hybrid, pop = by[("temporal", "hybrid")], by[("temporal", "popularity")]
    best_single = max(by[("temporal", m)].ndcg for m in ("popularity", "content", "collaborative"))
    if hybrid.ndcg <= best_single:
        failed.append("hybrid NDCG@10 does not beat the best single component")
    if hybrid.ndcg < 2 * pop.ndcg:
        failed.append("hybrid NDCG@10 is not >= 2x popularity")
    cold_h, cold_p = by[("cold-start", "hybrid")], by[("cold-start", "popularity")]
    if cold_h.users and cold_h.ndcg <= cold_p.ndcg:
        failed.append("cold-start hybrid does not beat popularity")
    return failed


def build_parser() -> argparse.ArgumentParser:
    d = PopulationParams()
    ap = argparse.ArgumentParser(
        prog="peerlearn recommender-eval",
        description="Offline evaluation of the PeerLearn recommender (markdown tables).",
    )
    ap.add_argument("--snapshot-json", help="evaluate on an exported snapshot instead")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--users", type=int, default=d.users)
    ap.add_argument("--mentors", type=int, default=d.mentors)
    ap.add_argument("--sessions", type=int, default=d.sessions)
    ap.add_argument("--topics", type=int, default=d.topics)
    ap.add_argument("--interactions", type=int, default=d.interactions)
    ap.add_argument("--noise", type=float, default=d.noise)
    ap.add_argument("--days", type=float, default=d.days)
    ap.add_argument("--style-weight", type=float, default=d.style_weight)
    ap.add_argument("--profile-noise", type=float, default=d.profile_noise)
    ap.add_argument("--empty-profile-rate", type=float, default=d.empty_profile_rate)
    ap.add_argument("--cutoff-quantile", type=float, default=0.75)
    ap.add_argument("--cold-fraction", type=float, default=0.15)
    ap.add_argument("--tune", action="store_true", help="choose weights on a validation split")
    ap.add_argument(
        "--validation", action="store_true",
        help="report the validation split (for tuning without touching the test period)",
    )
    ap.add_argument("--check", action="store_true", help="exit 1 if a goal is not met")
    return ap


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (``peerlearn recommender-eval`` / ``python -m recommender.evaluation``)."""
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    if args.snapshot_json:
        snapshot = load_snapshot(args.snapshot_json)
        print(f"# Recommender evaluation: {args.snapshot_json}\n")
    else:
        params = PopulationParams(
            seed=args.seed, users=args.users, mentors=args.mentors, sessions=args.sessions,
            topics=args.topics, interactions=args.interactions, noise=args.noise,
            days=args.days, style_weight=args.style_weight, profile_noise=args.profile_noise,
            empty_profile_rate=args.empty_profile_rate,
        )
        snapshot = generate(params).snapshot
        print("# Recommender evaluation: synthetic population\n")
        print(", ".join(f"{k}={v}" for k, v in vars(params).items()) + "\n")
    try:
        split = make_split(snapshot, args.cutoff_quantile, args.cold_fraction, args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    weights = RecommenderWeights()
    if args.tune:
        weights = tune(split, weights, args.seed)
    if args.validation:
        print("(validation split: cut from the training period; the test period is unused)\n")
        split = validation_split(split, args.cutoff_quantile, args.cold_fraction, args.seed)
    print(
        f"cutoff {split.cutoff.isoformat()}; {len(split.train.interactions)} training "
        f"interactions; {len(split.candidates)} new sessions; {len(split.warm)} warm and "
        f"{len(split.cold)} cold-start test users; weights content={weights.content} "
        f"collaborative={weights.collaborative} popularity={weights.popularity}"
        f"{' (tuned on validation)' if args.tune else ' (defaults)'}\n"
    )
    results = evaluate_split(split, weights)
    print(render_table(results))
    failed = check_goals(results)
    print()
    print("goals: " + ("all met" if not failed else "NOT met: " + "; ".join(failed)))
    print(f"({time.perf_counter() - t0:.1f} s)")
    return 1 if (failed and args.check) else 0


if __name__ == "__main__":
    raise SystemExit(main())
