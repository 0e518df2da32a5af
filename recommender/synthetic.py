"""A seeded synthetic population with latent interests, for evaluation and benchmarks.

The generative story (numpy generators seeded by ``seed``; docs/recommender.md has more):

* ``topics`` topics, each with a pool of six skills. The first 16 have realistic names
  ("Python", "Pandas", ...); further ones are named ``topicN``.
* Learners have latent topic preferences ``theta ~ Dirichlet(topic_alpha)`` (a few favourite
  topics), a hidden *style* vector (how they like to be taught; never written anywhere), a
  preferred *level* (beginner, intermediate, advanced; never declared) and an activity level
  (log-normal, so there are heavy users). Most declare a few skills/interests drawn from their
  favourite topics, ``profile_noise`` of them replaced by random ones; ``empty_profile_rate``
  declare nothing.
* Mentors teach one or two topics and have a hidden style vector, a quality and a
  productivity (how many of the sessions they give).
* Sessions belong to a mentor and one of the mentor's topics, carry 2-3 skills of that topic
  (sometimes one from another topic) and a level. The title follows a template of that level
  ("Intro to Python", "Practical Python", "Python deep dive"), the description mixes topic
  words, a level phrase and neutral filler. Each is published (``created_at``) at a uniform
  time and scheduled 1-14 days later; ``cancel_rate`` of them are cancelled.
* Interactions are generated visit by visit over ``days`` days. A visiting learner looks at
  the sessions published and not yet started; their utility for a session is
  ``4*theta[topic] + style_weight*<style_user, style_mentor>/sqrt(dims)
  + level_weight*(1 - |level_user - level_session|) + 0.5*quality`` plus Gumbel noise scaled
  by ``noise``. They view the top few (Gumbel top-k = sampling by ``exp(utility)``), book the
  best one if it clears a threshold and has a seat left, complete it at its schedule (85 %)
  and rate it (60 %, 1-5 from the noiseless utility plus noise).

Each part of the utility shows somewhere different: topics in text and behaviour, levels only
in the text of the sessions a learner chose, mentor styles only in behaviour (whom they book
with), quality in ratings and popularity. No single component sees everything.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from .data import Interaction, MentorItem, SessionItem, Snapshot, UserProfile

TOPICS: list[tuple[str, list[str]]] = [
    ("Python", ["Python", "Pandas", "NumPy", "Flask", "Django", "Asyncio"]),
    ("Web development", ["JavaScript", "React", "CSS", "HTML", "TypeScript", "Node.js"]),
    ("Data science", ["Statistics", "SQL", "Data visualization", "R", "Excel", "Tableau"]),
    (
        "Machine learning",
        ["Machine learning", "PyTorch", "Scikit-learn", "NLP", "Deep learning", "Computer vision"],
    ),
    ("DevOps", ["Docker", "Kubernetes", "Linux", "Terraform", "CI/CD", "AWS"]),
    ("Mobile", ["Swift", "Kotlin", "Flutter", "Android", "iOS", "React Native"]),
    (
        "Design",
        ["Figma", "UX research", "Typography", "Illustration", "Color theory", "Prototyping"],
    ),
    ("Music", ["Guitar", "Piano", "Music theory", "Singing", "Ableton", "Songwriting"]),
    ("Languages", ["Spanish", "French", "German", "Japanese", "Pronunciation", "Grammar"]),
    (
        "Mathematics",
        ["Algebra", "Calculus", "Linear algebra", "Probability", "Geometry", "Number theory"],
    ),
    (
        "Photography",
        [
            "Lightroom",
            "Portrait photography",
            "Composition",
            "Lighting",
            "Photoshop",
            "Street photography",
        ],
    ),
    (
        "Marketing",
        ["SEO", "Copywriting", "Social media", "Email marketing", "Analytics", "Branding"],
    ),
    ("Finance", ["Budgeting", "Investing", "Accounting", "Crypto", "Taxes", "Valuation"]),
    ("Writing", ["Fiction", "Technical writing", "Poetry", "Editing", "Blogging", "Storytelling"]),
    (
        "Security",
        [
            "Cryptography",
            "Penetration testing",
            "Networking",
            "OWASP",
            "Forensics",
            "Threat modeling",
        ],
    ),
    ("Cooking", ["Baking", "Knife skills", "Vegan cooking", "Fermentation", "Pastry", "Meal prep"]),
]
# Neutral words: they say nothing about topic or level.
_FILLER = (
    "workshop live project walkthrough examples exercises questions answers tips tricks "
    "patterns weekly group friendly step guided real world clinic session notes demo"
).split()
#: level 0 = beginner, 1 = intermediate, 2 = advanced: stated in the title and description
_LEVEL_TEMPLATES = [
    ["Intro to {a}", "{a} for beginners", "{a} fundamentals", "First steps in {a} and {b}"],
    ["Practical {a}", "Hands-on {a} and {b}", "{a} workshop: {b}", "Applied {a}"],
    ["Advanced {a}", "{a} deep dive", "{a} masterclass", "Expert {a}: {b} internals"],
]
_LEVEL_PHRASES = [
    "no prior experience needed, gentle introduction",
    "some experience expected, building real projects",
    "for experienced practitioners, expert techniques",
]
START = datetime(2025, 1, 6, tzinfo=UTC)


@dataclass(frozen=True)
class PopulationParams:
    """Knobs of the synthetic population (see module docstring)."""

    seed: int = 7
    users: int = 4000
    mentors: int = 120
    sessions: int = 1200
    topics: int = 12
    interactions: int = 80_000
    noise: float = 1.0
    days: float = 90.0
    style_dims: int = 3
    style_weight: float = 1.2
    level_weight: float = 1.0
    topic_alpha: float = 0.2
    empty_profile_rate: float = 0.15
    profile_noise: float = 0.2
    cancel_rate: float = 0.02


@dataclass(frozen=True)
class Population:
    """A generated snapshot plus the time its history ends."""

    params: PopulationParams
    snapshot: Snapshot
    end: datetime


def _topics(n: int) -> list[tuple[str, list[str]]]:
    out = list(TOPICS[:n])
    for t in range(len(out), n):
        out.append((f"Topic{t}", [f"topic{t} skill{j}" for j in range(6)]))
    return out


def generate(p: PopulationParams) -> Population:
    """Generate a population; identical parameters give an identical snapshot."""
    rng = np.random.default_rng(p.seed)
    topics = _topics(p.topics)
    n_t = len(topics)
    end = START + timedelta(days=p.days)

    # Learners ------------------------------------------------------------------------------
    theta = rng.dirichlet(np.full(n_t, p.topic_alpha), size=p.users)
    user_style = rng.normal(size=(p.users, p.style_dims))
    activity = rng.lognormal(0.0, 1.0, size=p.users)
    users = [_profile(i + 1, theta[i], topics, p, rng) for i in range(p.users)]

    # Mentors -------------------------------------------------------------------------------
    m_ids = np.arange(p.users + 1, p.users + p.mentors + 1)
    m_main = rng.integers(0, n_t, size=p.mentors)
    m_second = np.where(rng.random(p.mentors) < 0.3, rng.integers(0, n_t, p.mentors), m_main)
    m_style = rng.normal(size=(p.mentors, p.style_dims))
    m_quality = rng.normal(0.0, 0.5, size=p.mentors)
    m_prod = rng.lognormal(0.0, 0.7, size=p.mentors)
    mentors = []
    for j in range(p.mentors):
        pool = topics[m_main[j]][1] + (topics[m_second[j]][1] if m_second[j] != m_main[j] else [])
        skills = tuple(str(x) for x in rng.choice(pool, size=min(4, len(pool)), replace=False))
        bio = f"I teach {topics[m_main[j]][0]}" + (
            f" and {topics[m_second[j]][0]}" if m_second[j] != m_main[j] else ""
        )
        mentors.append(MentorItem(int(m_ids[j]), f"mentor{j + 1}", skills, bio, None, 0))

    # Sessions ------------------------------------------------------------------------------
    s_mentor = rng.choice(p.mentors, size=p.sessions, p=m_prod / m_prod.sum())
    s_topic = np.where(rng.random(p.sessions) < 0.75, m_main[s_mentor], m_second[s_mentor])
    s_created = rng.uniform(0, p.days, size=p.sessions)
    s_sched = s_created + rng.uniform(1, 14, size=p.sessions)
    s_cap = rng.integers(3, 11, size=p.sessions)
    s_cancel = rng.random(p.sessions) < p.cancel_rate
    # Levels come from their own stream so that the rest of a population does not depend on them.
    level_rng = np.random.default_rng([p.seed, 1])
    s_level = level_rng.integers(0, 3, size=p.sessions)
    u_level = level_rng.integers(0, 3, size=p.users)
    s_skills, s_text = [], []
    for i in range(p.sessions):
        name, pool = topics[s_topic[i]]
        picked = [str(x) for x in rng.choice(pool, size=int(rng.integers(2, 4)), replace=False)]
        if rng.random() < 0.15:
            picked.append(str(rng.choice(topics[rng.integers(n_t)][1])))
        template = str(rng.choice(_LEVEL_TEMPLATES[s_level[i]]))
        title = template.format(a=picked[0], b=picked[1])
        topic_words = " ".join(rng.choice(pool, size=3)).lower() + f" {name.lower()}"
        filler = " ".join(rng.choice(_FILLER, size=8))
        desc = f"{topic_words} {_LEVEL_PHRASES[s_level[i]]} {filler}"
        s_skills.append(tuple(picked))
        s_text.append((title, desc))

    # Interactions --------------------------------------------------------------------------
    base = 4.0 * theta[:, s_topic]  # users x sessions topic utility (dense, fine at this scale)
    style = (user_style @ m_style.T / np.sqrt(p.style_dims)) * p.style_weight
    quality = 0.5 * m_quality[s_mentor]
    taken = np.zeros(p.sessions, dtype=np.int64)
    booked: set[tuple[int, int]] = set()
    events: list[Interaction] = []
    user_p = activity / activity.sum()
    threshold = 3.0
    order = np.argsort(s_created)
    created_sorted = s_created[order]
    visits = 0
    # Guard: a population with no sessions (or a zero horizon) could never reach the target.
    while len(events) < p.interactions and visits < 50 * p.interactions + 1000:
        visits += 512
        batch_users = rng.choice(p.users, size=512, p=user_p)
        batch_times = rng.uniform(0, p.days, size=512)
        for u, t in zip(batch_users, batch_times, strict=True):
            cand = order[: np.searchsorted(created_sorted, t)]
            cand = cand[(s_sched[cand] > t) & ~s_cancel[cand]]
            if not len(cand):
                continue
            # +level_weight at the learner's level, 0 one level away, -level_weight two away
            level = p.level_weight * (1.0 - np.abs(u_level[u] - s_level[cand]))
            clean = base[u, cand] + style[u, s_mentor[cand]] + level + quality[cand]
            noisy = clean + p.noise * rng.gumbel(size=len(cand))
            n_view = min(len(cand), 1 + int(rng.poisson(1.5)))
            top = np.argpartition(-noisy, n_view - 1)[:n_view]
            top = top[np.argsort(-noisy[top])]
            at = START + timedelta(days=float(t))
            for rank, c in enumerate(top):
                s = int(cand[c])
                sid, mid = _sid(p.seed, s), int(m_ids[s_mentor[s]])
                events.append(Interaction(u + 1, sid, mid, "view", at + timedelta(minutes=rank)))
                full = taken[s] >= s_cap[s]  # full sessions are still looked at
                if rank or full or noisy[c] < threshold or (u, s) in booked:
                    continue
                booked.add((u, s))
                taken[s] += 1
                events.append(Interaction(u + 1, sid, mid, "booking", at + timedelta(minutes=5)))
                done = START + timedelta(days=float(s_sched[s]), hours=1)
                if done < end and rng.random() < 0.85:
                    events.append(Interaction(u + 1, sid, mid, "completion", done))
                    if rng.random() < 0.6:
                        r = 3.5 + 0.8 * (clean[c] - 2.5) + rng.normal(0, 0.8 * p.noise)
                        events.append(
                            Interaction(
                                u + 1,
                                sid,
                                mid,
                                "rating",
                                done + timedelta(minutes=30),
                                float(np.clip(round(r), 1, 5)),
                            )
                        )
            if len(events) >= p.interactions:
                break
    events.sort(key=lambda e: e.at)

    sessions = []
    for i in range(p.sessions):
        sched = START + timedelta(days=float(s_sched[i]))
        status = "cancelled" if s_cancel[i] else ("completed" if sched < end else "scheduled")
        sessions.append(
            SessionItem(
                id=_sid(p.seed, i),
                mentor_id=int(m_ids[s_mentor[i]]),
                title=s_text[i][0],
                description=s_text[i][1],
                skills=s_skills[i],
                schedule=sched,
                status=status,
                max_participants=int(s_cap[i]),
                current_participants=int(taken[i]),
                price=float(rng.choice([0.0, 5.0, 10.0, 20.0])),
                created_at=START + timedelta(days=float(s_created[i])),
            )
        )
    mentors = _with_ratings(mentors, events)
    # Shuffle so that catalogue order carries no information (ties are broken by index).
    perm = rng.permutation(len(sessions))
    snapshot = Snapshot(users, [sessions[i] for i in perm], mentors, events)
    return Population(p, snapshot, end)


def _sid(seed: int, i: int) -> str:
    # Deterministic UUID-shaped ids: stable across runs, distinct across seeds.
    return f"{seed & 0xFFFFFFFF:08x}-0000-4000-8000-{i:012x}"


def _profile(
    uid: int,
    theta: np.ndarray,
    topics: list[tuple[str, list[str]]],
    p: PopulationParams,
    rng: np.random.Generator,
) -> UserProfile:
    if rng.random() < p.empty_profile_rate:
        return UserProfile(uid, "learner")

    def draw() -> str:
        if rng.random() < p.profile_noise:
            t = int(rng.integers(len(topics)))
        else:
            t = int(rng.choice(len(topics), p=theta))
        name, pool = topics[t]
        return name if rng.random() < 0.3 else str(rng.choice(pool))

    skills = tuple(dict.fromkeys(draw() for _ in range(int(rng.integers(0, 4)))))
    interests = tuple(dict.fromkeys(draw() for _ in range(int(rng.integers(1, 4)))))
    return UserProfile(uid, "learner", skills, interests)


def _with_ratings(mentors: list[MentorItem], events: list[Interaction]) -> list[MentorItem]:
    """Fill each mentor's average rating from the generated ratings."""
    sums: dict[int, list[float]] = {}
    for e in events:
        if e.kind == "rating" and e.value is not None:
            sums.setdefault(e.mentor_id, []).append(e.value)
    out = []
    for m in mentors:
        r = sums.get(m.id, [])
        rating = round(sum(r) / len(r), 2) if r else None
        out.append(replace(m, rating=rating, rating_count=len(r)))
    return out
