"""Recommender benchmark: fit time, per-request latency, memory, and a naive baseline.

    python bench/recommender_bench.py [--users 10000] [--sessions 2000]
                                      [--interactions 200000] [--requests 1000]

A seeded synthetic population (``recommender.synthetic``, the evaluation's generator) is
fitted once; then requests for a mix of users (the most active tenth, random learners,
people registered after the fit with a profile, people with no profile and no history) are
timed one by one. The naive baselines run in the same process on the same model:

* "Python loop": every session scored with plain Python (dicts and loops, same formula),
  then sorted; checked to give the same top 10 as the vectorised path with the configured
  weights (``learn_blend=False``: the loop spells out the fixed blend, not the learnt one);
* "refit per request": what a request would cost if the model were refitted for it.

A last row times requests served on the event loop *while* a background refit runs, which
is what the app does every few minutes. Prints markdown tables; CPU heavy (run it alone).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import pickle
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from recommender.data import (  # noqa: E402
    MentorItem,
    RecommenderWeights,
    SessionItem,
    Snapshot,
    UserProfile,
)
from recommender.engine import Engine  # noqa: E402
from recommender.hybrid import (  # noqa: E402
    MENTOR_POPULARITY_SHARE,
    RATING_BOOST,
    FittedModel,
    Recommender,
    fit_model,
)
from recommender.synthetic import PopulationParams, generate  # noqa: E402

K = 10


def rss_mb() -> float:
    rss: int = psutil.Process().memory_info().rss
    return rss / 2**20


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)]


def timed_ms(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def request_mix(snapshot: Snapshot, n: int, seed: int) -> list[tuple[int, UserProfile | None]]:
    """(user id, profile given with the request) for a realistic mix of users."""
    rng = random.Random(seed)
    activity: dict[int, int] = {}
    for it in snapshot.interactions:
        activity[it.user_id] = activity.get(it.user_id, 0) + 1
    heavy = sorted(activity, key=activity.__getitem__, reverse=True)[: max(1, len(activity) // 10)]
    learners = [u.id for u in snapshot.users]
    with_profile = [u for u in snapshot.users if u.interests]
    out: list[tuple[int, UserProfile | None]] = []
    for i in range(n):
        kind = i % 10
        if kind < 4:
            out.append((rng.choice(heavy), None))
        elif kind < 8:
            out.append((rng.choice(learners), None))
        elif kind == 8:  # registered after the fit: only the profile is known
            template = rng.choice(with_profile)
            uid = 10_000_000 + i
            out.append((uid, UserProfile(uid, "learner", template.skills, template.interests)))
        else:  # registered after the fit, declared nothing
            out.append((20_000_000 + i, UserProfile(20_000_000 + i, "learner")))
    return out


def naive_recommend(rec: Recommender, user_id: int, now_ts: float) -> list[str]:
    """The same blend, every session scored one at a time in plain Python, then filtered."""
    m, w, live = rec.model, rec.weights, rec.live
    cat, sessions, skills = m.catalog, m.content.sessions, m.collaborative.session_skills
    user = rec._user(user_id, None)
    u = {j: float(v) for j, v in enumerate(user.vector) if v}
    aff = m.collaborative.affinity(user.taste).tolist()
    taste = user.taste.tolist()
    row = cat.user_index.get(user_id)
    booked = set(cat.booked_of(row).tolist()) if row is not None else set()
    pop_counter = live.session_popularity
    decay = 2.0 ** (-(now_ts - pop_counter.ref_ts) / pop_counter.half_life_s)
    n_m = m.collaborative.n_mentors
    rows = []
    for i, s in enumerate(cat.sessions):
        content = sum(
            float(sessions.data[p]) * u.get(int(sessions.indices[p]), 0.0)
            for p in range(sessions.indptr[i], sessions.indptr[i + 1])
        )
        mentor = int(cat.session_mentor[i])
        skill = (
            sum(
                float(skills.data[p]) * aff[n_m + int(skills.indices[p])]
                for p in range(skills.indptr[i], skills.indptr[i + 1])
            )
            if aff
            else 0.0
        )
        audience = sum(a * b for a, b in zip(live.session_audience[i].tolist(), taste, strict=True))
        audience /= 3.0 + float(live.audience_weight[i])
        collab = aff[mentor] + 0.7 * skill + audience if aff else 0.0
        pop = (
            float(pop_counter.values[i])
            + MENTOR_POPULARITY_SHARE * float(live.mentor_popularity.values[mentor])
        ) * decay
        bookable = (
            cat.session_open[i]
            and cat.session_ts[i] >= now_ts
            and i not in booked
            and cat.session_taken[i] + live.taken_extra[i] < cat.session_capacity[i]
            and s.mentor_id != user_id
        )
        rows.append((i, bookable, content, collab, math.log1p(pop), float(m.mentor_rating[mentor])))
    rows = [r for r in rows if r[1]]
    if not rows:
        return []
    top_c = max(r[2] for r in rows) or 1.0
    lo_f, hi_f = min(r[3] for r in rows), max(r[3] for r in rows)
    top_p = max(r[4] for r in rows) or 1.0
    cw = rec._collab_weight(user.row, user_id)
    scored = []
    for i, _, c, f, p, rating in rows:
        pop_part = (1 - RATING_BOOST) * p / top_p + RATING_BOOST * (rating - 1) / 4
        total = w.content * c / top_c + w.popularity * pop_part + 1e-3 * pop_part
        if hi_f > lo_f:
            total += cw * (f - lo_f) / (hi_f - lo_f)
        scored.append((-total, i))
    scored.sort()
    out: list[str] = []
    per_mentor: dict[int, int] = {}
    for _, i in scored:
        mentor = int(cat.session_mentor[i])
        if per_mentor.get(mentor, 0) < w.max_per_mentor:
            per_mentor[mentor] = per_mentor.get(mentor, 0) + 1
            out.append(cat.sessions[i].id)
            if len(out) == K:
                break
    return out


def time_publishing(model: FittedModel, weights: RecommenderWeights, now: datetime) -> list[float]:
    """``add_session`` (a session published between refits) for sessions in brand-new topics
    by mentors new since the fit: new vocabulary columns, a new mentor each."""
    rec = Recommender(model, weights)
    out = []
    for j in range(50):
        mentor = MentorItem(90_000_000 + j, f"newcomer{j}", (f"Newtopic{j}",), "bio", None, 0)
        item = SessionItem(
            id=f"bench-new-{j}",
            mentor_id=mentor.id,
            title=f"Intro to newtopic{j} craft{j}",
            description=f"newword{j} othernewword{j} for beginners",
            skills=(f"Newtopic{j}",),
            schedule=now + timedelta(days=2),
            status="scheduled",
            max_participants=6,
            current_participants=0,
            price=0.0,
            created_at=now,
        )
        out.append(timed_ms(partial(rec.add_session, item, mentor)))
    return out


def latency_row(name: str, samples: list[float]) -> str:
    return (
        f"| {name} | {len(samples)} | {statistics.median(samples):.2f} | "
        f"{percentile(samples, 95):.2f} | {percentile(samples, 99):.2f} | {max(samples):.2f} |"
    )


async def during_refit(
    model: FittedModel,
    snapshot: Snapshot,
    weights: RecommenderWeights,
    mix: list[tuple[int, UserProfile | None]],
    now: datetime,
) -> tuple[list[float], float]:
    """Requests on the loop while the engine refits in its worker thread."""
    fits = iter([model])

    def fitter(snap: Snapshot, w: RecommenderWeights) -> FittedModel:
        first = next(fits, None)
        return first if first is not None else fit_model(snap, w)

    engine = Engine(lambda: snapshot, weights, fitter=fitter, min_refit_gap_s=0)
    await engine.start(wait=True)
    refit = asyncio.create_task(engine.refresh_now())
    samples: list[float] = []
    t0 = time.perf_counter()
    i = 0
    while not refit.done():
        uid, profile = mix[i % len(mix)]
        t1 = time.perf_counter()
        engine.recommend_sessions(uid, K, now=now, profile=profile)
        samples.append((time.perf_counter() - t1) * 1000)
        i += 1
        await asyncio.sleep(0)  # let the loop breathe, like a server between requests
    await refit
    took = time.perf_counter() - t0
    await engine.stop()
    return samples, took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--sessions", type=int, default=2_000)
    ap.add_argument("--mentors", type=int, default=200)
    ap.add_argument("--interactions", type=int, default=200_000)
    ap.add_argument("--requests", type=int, default=1_000)
    ap.add_argument("--naive-requests", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    t0 = time.perf_counter()
    params = PopulationParams(
        seed=args.seed,
        users=args.users,
        sessions=args.sessions,
        mentors=args.mentors,
        interactions=args.interactions,
    )
    population = generate(params)
    snapshot, now = population.snapshot, population.end - timedelta(days=3)
    gen_s = time.perf_counter() - t0
    weights = RecommenderWeights()
    gc.collect()
    rss_before = rss_mb()

    fit_times = []
    model = None
    for _ in range(2):  # the second fit shows the steady state (imports and caches warm)
        model = None
        gc.collect()
        t0 = time.perf_counter()
        model = fit_model(snapshot, weights)
        fit_times.append(time.perf_counter() - t0)
    assert model is not None
    gc.collect()
    rss_after = rss_mb()
    model_mb = len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)) / 2**20
    fixed_weights = replace(weights, learn_blend=False)
    t0 = time.perf_counter()
    fit_model(snapshot, fixed_weights)  # the components alone: what the learnt blend adds
    fixed_fit_s = time.perf_counter() - t0
    gc.collect()

    rec = Recommender(model, weights)
    mix = request_mix(snapshot, args.requests, args.seed)
    for uid, profile in mix[:50]:  # warm-up
        rec.recommend_sessions(uid, K, now=now, profile=profile)
    sessions_ms = [
        timed_ms(partial(rec.recommend_sessions, uid, K, now=now, profile=profile))
        for uid, profile in mix
    ]
    mentors_ms = [
        timed_ms(partial(rec.recommend_mentors, uid, K, now=now, profile=profile))
        for uid, profile in mix
    ]
    trending_ms = [timed_ms(partial(rec.trending, K, now=now)) for _ in range(200)]
    live_events = list(snapshot.interactions[-2000:])
    record_ms = [timed_ms(partial(rec.record, e)) for e in live_events]
    publish_ms = time_publishing(model, weights, now)

    known = [(u, p) for u, p in mix if p is None and u in model.catalog.user_index]
    known = known[: args.naive_requests]
    now_ts = now.timestamp()
    same = 0
    naive_ms, fast_ms, learnt_ms = [], [], []
    # The loop spells out the configured blend: compare it with the same, vectorised.
    fixed = Recommender(model, fixed_weights, rec.live)
    for uid, _ in known:
        learnt_ms.append(timed_ms(partial(rec.recommend_sessions, uid, K, now=now)))
        fast_ms.append(timed_ms(partial(fixed.recommend_sessions, uid, K, now=now)))
        naive_ms.append(timed_ms(partial(naive_recommend, fixed, uid, now_ts)))
        fast_ids = [r.id for r in fixed.recommend_sessions(uid, K, now=now)]
        same += fast_ids == naive_recommend(fixed, uid, now_ts)

    refit_samples, refit_s = asyncio.run(during_refit(model, snapshot, weights, mix, now))

    n_users = len(model.catalog.users)
    print("# Recommender benchmark\n")
    print(
        f"population: {n_users} users, {model.catalog.n_sessions} sessions, "
        f"{model.catalog.n_mentors} mentors, {len(snapshot.interactions)} interactions "
        f"(seed {args.seed}; generated in {gen_s:.1f} s); {psutil.cpu_count()} CPUs; "
        f"requests at {now:%Y-%m-%d} with {int(model.catalog.session_open.sum())} open "
        f"sessions in the catalogue\n"
    )
    print("| fit | value |")
    print("|---|---:|")
    print(f"| fit time, first (s) | {fit_times[0]:.2f} |")
    print(f"| fit time, second (s) | {fit_times[1]:.2f} |")
    print(f"| fit time without the learnt blend (s) | {fixed_fit_s:.2f} |")
    blend = model.blend
    print(
        f"| learnt blend: training bookings / pairs | "
        f"{f'{blend.queries} / {blend.pairs}' if blend else 'none (too little data)'} |"
    )
    print(f"| process RSS before fit (MB) | {rss_before:.0f} |")
    print(f"| process RSS after fit (MB) | {rss_after:.0f} |")
    print(f"| fitted model, pickled (MB) | {model_mb:.1f} |")
    print()
    print("| per request (ms) | n | p50 | p95 | p99 | max |")
    print("|---|---:|---:|---:|---:|---:|")
    print(latency_row("sessions (mix of users)", sessions_ms))
    print(latency_row("mentors (mix of users)", mentors_ms))
    print(latency_row("trending", trending_ms))
    print(latency_row("record one interaction", record_ms))
    print(latency_row("publish a session in a new topic", publish_ms))
    print(latency_row(f"sessions during a background refit ({refit_s:.1f} s)", refit_samples))
    print()
    fast_p50, naive_p50 = statistics.median(fast_ms), statistics.median(naive_ms)
    print("| same run, known users | p50 (ms) | ratio to vectorised |")
    print("|---|---:|---:|")
    print(f"| vectorised, configured weights | {fast_p50:.2f} | 1x |")
    learnt_p50 = statistics.median(learnt_ms)
    print(
        f"| vectorised, learnt blend (what serves) | {learnt_p50:.2f} "
        f"| {learnt_p50 / fast_p50:.1f}x |"
    )
    print(f"| Python loop over every session | {naive_p50:.2f} | {naive_p50 / fast_p50:.0f}x |")
    refit_ms = fit_times[1] * 1000
    print(f"| refit per request | {refit_ms:.0f} | {refit_ms / fast_p50:.0f}x |")
    print(
        f"\n(the Python loop gave the same top {K} as the configured weights, vectorised, "
        f"for {same} of {len(known)} users)"
    )


if __name__ == "__main__":
    main()
