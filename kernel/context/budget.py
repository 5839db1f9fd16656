"""Budget arithmetic of the context tiers: small pure functions over integers.

Each states its contract in PEP 316 form (``pre:``/``post:``), checked by CrossHair
(``tests/run_crosshair.py``); the transitions call only these for token arithmetic.
Each function has one ``post:`` (a conjunction): CrossHair spends its time budget per
condition, so one condition per function keeps the CI run short.
"""

from __future__ import annotations


def evict_count(tokens: tuple[int, ...], target: int) -> int:
    """How many of the oldest hot entries must leave so the rest fit in ``target``.

    ``tokens`` are the hot entries' costs, oldest first. The answer is the smallest
    ``k`` with ``sum(tokens[k:]) <= target``: compaction never moves more than needed.

    pre: target >= 0
    pre: all(t >= 0 for t in tokens)
    post: 0 <= __return__ <= len(tokens) and sum(tokens[__return__:]) <= target and (__return__ == 0 or sum(tokens[__return__ - 1:]) > target)
    """
    remaining = sum(tokens)
    k = 0
    while remaining > target:
        remaining -= tokens[k]
        k += 1
    return k


def overflow_tokens(key_tokens: int, warm_budget_tokens: int) -> int:
    """How far key entries alone exceed the warm budget (0 when they fit).

    pre: key_tokens >= 0
    pre: warm_budget_tokens >= 0
    post: __return__ >= 0
    post: (__return__ == 0) == (key_tokens <= warm_budget_tokens)
    post: __return__ == 0 or key_tokens - __return__ == warm_budget_tokens
    """
    return max(0, key_tokens - warm_budget_tokens)


def summaries_to_drop(summary_tokens: tuple[int, ...], key_tokens: int, warm_budget_tokens: int) -> int:
    """How many of the oldest summaries leave warm so key entries plus the rest fit.

    Key entries are never dropped; if they alone exceed the budget, every summary
    goes (and the agent is in overflow). The answer is the smallest such count.

    pre: key_tokens >= 0
    pre: warm_budget_tokens >= 0
    pre: all(t >= 0 for t in summary_tokens)
    post: 0 <= __return__ <= len(summary_tokens) and (key_tokens + sum(summary_tokens[__return__:]) <= warm_budget_tokens or __return__ == len(summary_tokens)) and (__return__ == 0 or key_tokens + sum(summary_tokens[__return__ - 1:]) > warm_budget_tokens)
    """
    total = key_tokens + sum(summary_tokens)
    d = 0
    while total > warm_budget_tokens and d < len(summary_tokens):
        total -= summary_tokens[d]
        d += 1
    return d


def fit_prefix(costs: tuple[int, ...], budget: int) -> int:
    """How many leading items (in priority order) fit together in ``budget``.

    The longest prefix whose costs sum to at most ``budget``; selection stops at the
    first item that does not fit, so what is shown is always a priority prefix.

    pre: budget >= 0
    pre: all(c >= 0 for c in costs)
    post: 0 <= __return__ <= len(costs) and sum(costs[:__return__]) <= budget and (__return__ == len(costs) or sum(costs[:__return__ + 1]) > budget)
    """
    used = 0
    for i, c in enumerate(costs):
        if used + c > budget:
            return i
        used += c
    return len(costs)


def victims(last_active_ms: tuple[int, ...], excess: int) -> tuple[int, ...]:
    """Indexes of the ``excess`` least recently active agents, in hibernation order.

    ``last_active_ms[i]`` belongs to the i-th candidate, candidates being listed in
    agent-id order, so ties go to the smaller agent id. Oldest activity first.

    pre: excess >= 0
    post: len(__return__) == min(excess, len(last_active_ms)) and all((last_active_ms[x], x) < (last_active_ms[y], y) for x, y in zip(__return__, __return__[1:])) and all((last_active_ms[a], a) < (last_active_ms[b], b) for a in __return__ for b in range(len(last_active_ms)) if b not in __return__)
    """
    order = sorted(range(len(last_active_ms)), key=lambda i: (last_active_ms[i], i))
    return tuple(order[:excess])
