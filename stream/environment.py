"""A closed-loop environment: simulated shoppers who react to the decisions they receive.

:class:`Environment` owns ``users`` simulated users (seeded ``random.Random`` per user, all
derived from the environment's own ``random.Random(seed)``), each with hidden traits:

* ``known`` (``known_fraction``): a known user sends ``userId`` on every event; an anonymous one
  only ``anonymousId`` (and stays keyed by it, even after signing up: see below);
* ``price_sensitive``: 80 % of anonymous users, 20 % of known ones (so ``known_user``, which the
  bandit sees, predicts it);
* ``focused``: half the users browse their ``favourite`` category 75 % of the time, the others
  35 %;
* ``add_rate`` (uniform 0.06 to 0.18): the chance of adding a viewed product to the cart (x1.5 in
  the favourite category), and ``buy_rate`` (uniform 0.15 to 0.45), the organic checkout chance.

**Organic behaviour** (what the holdout sees). Sessions start after exponential gaps (mean
``1 / sessions_per_day`` days, always more than 30 minutes: a new session for the profile); a
session is a ``Home`` page, then steps 0.5 s to ~2 min apart, each a ``Product Viewed`` (and
sometimes ``Product Added``), ending with probability 0.12 per step. At the end, a user with a
cart views it (50 %), starts a checkout (``buy_rate``) and completes the order (60 %). Carts
last until an order, as in the profile.

**Reactions** (the true reward structure). After each event the environment receives its
decision (:meth:`Environment.observe`). A *new* non-default decision (not ``sticky``) made while
the user is not already in a reaction reaches the user: a ``Decision Shown`` exposure (with
``properties.decision_id``) 0.2 to 0.8 s later, then a click with probability ``p_click``, then
the action's chain, every event of it carrying the decision id:

==================  ======================================  =======================================
action              ``p_click`` (hidden trait)                after a click
==================  ======================================  =======================================
offer_discount      0.35 price-sensitive, 0.06 otherwise     checkout 0.60, then order 0.85
remind_cart         0.25 known, 0.15 anonymous               checkout 0.50, then order 0.30
                                                             price-sensitive / 0.70 otherwise
recommend_category  0.30 focused, 0.10 otherwise             a view in the category, add 0.35
invite_signup       0.12                                     ``Signed Up``; not clicked: the
                                                             user leaves (session over, no
                                                             organic checkout) with 0.30
none                nothing                                  nothing
==================  ======================================  =======================================

With the default rewards (click 0.2, add 0.3, checkout 0.5, order 1.0; a decision earns its
largest) the expected reaction reward (:func:`true_action_values`) is: offer_discount 0.222
(price-sensitive) / 0.038; remind_cart 0.126 (known, on average over price sensitivity) / 0.067
(anonymous); recommend_category 0.0705 / 0.0235; invite_signup 0.024 (and a lost session 30 % of
the time); none 0. So the best action depends on the context: with a cart worth a discount,
anonymous users should get the discount and known users the reminder; browsing anonymous users
should get a recommendation, not the signup invitation the priority rules give them. Organic
outcomes are credited to the latest pending decision too (last touch), for every variant alike,
so measured rewards are these values plus an organic baseline.

A signup keeps the user's ``anonymousId`` as the key: the step does no identity stitching yet,
and a ``userId`` would move the user to another profile (and perhaps another variant).

Pure: no wall clock, no I/O; the same config gives the same events, byte for byte, given the
same decisions.

>>> env = Environment(EnvironmentConfig(users=3, days=0.2, seed=1))
>>> first = env.next_event()
>>> first["type"], first["name"]
('page', 'Home')
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from stream.decision import Decision
from stream.rewards import RewardConfig
from stream.synthetic import CATEGORIES, GeneratorConfig, Product, build_catalog, iso_ms
from stream.windows import DAY_MS, MINUTE_MS

__all__ = [
    "CLICK",
    "Environment",
    "EnvironmentConfig",
    "Opportunity",
    "Traits",
    "click_probability",
    "true_action_values",
]

Event = dict[str, Any]

#: action -> (p_click when the trait holds, p_click otherwise); which trait: see _TRAIT.
CLICK: dict[str, tuple[float, float]] = {
    "offer_discount": (0.35, 0.06),
    "remind_cart": (0.25, 0.15),
    "recommend_category": (0.30, 0.10),
    "invite_signup": (0.12, 0.12),
}
_TRAIT = {
    "offer_discount": "price_sensitive",
    "remind_cart": "known",
    "recommend_category": "focused",
    "invite_signup": "known",
}
#: Cart actions: (checkout after a click, order after checkout if price-sensitive, otherwise).
CHECKOUT = {"offer_discount": (0.60, 0.85, 0.85), "remind_cart": (0.50, 0.30, 0.70)}
RECOMMEND_ADD = 0.35
SIGNUP_ANNOY = 0.30
SESSION_END = 0.12
CART_VIEW, ORDER = 0.5, 0.6
_FORCED = frozenset({"opted_out", "protect_purchase"})
_MAX_CART_LINES = 8


@dataclass(frozen=True, slots=True)
class EnvironmentConfig:
    users: int = 200
    days: float = 1.0
    seed: int = 1
    start_ms: int = 1_700_000_000_000
    known_fraction: float = 0.45
    sessions_per_day: float = 2.0
    default_action: str = "none"

    def __post_init__(self) -> None:
        if self.users < 1 or not self.days > 0 or not self.sessions_per_day > 0:
            raise ValueError("need users >= 1, days > 0 and sessions_per_day > 0")
        if not 0.0 <= self.known_fraction <= 1.0:
            raise ValueError("known_fraction must be in [0, 1]")


@dataclass(frozen=True, slots=True)
class Traits:
    """A simulated user's hidden ground truth."""

    key: str
    anonymous_id: str
    user_id: str | None
    price_sensitive: bool
    focused: bool
    favourite: str
    add_rate: float
    buy_rate: float

    @property
    def known(self) -> bool:
        return self.user_id is not None


class Opportunity:
    """A new decision that reached a user: what it was worth in truth, and what happened."""

    __slots__ = ("action", "at_ms", "best", "clicked", "user_key", "value", "variant")

    def __init__(self, decision: Decision, value: float, best: float, clicked: bool | None) -> None:
        self.user_key, self.variant = decision.user_key, decision.variant
        self.action, self.at_ms = decision.action, decision.event_time_ms
        self.value, self.best, self.clicked = value, best, clicked


def click_probability(action: str, traits: Traits) -> float:
    """The chance that ``traits``' user clicks ``action`` when it is shown (0 for the default)."""
    probabilities = CLICK.get(action)
    if probabilities is None:
        return 0.0
    return probabilities[0] if getattr(traits, _TRAIT[action]) else probabilities[1]


def true_action_values(
    traits: Traits, actions: Iterable[str], rewards: Mapping[str, float] | None = None
) -> dict[str, float]:
    """The expected reaction reward of each action for this user (the oracle), organic outcomes
    aside: a decision earns the largest reward among its outcomes."""
    r = RewardConfig().rewards if rewards is None else rewards
    click, checkout, order, add = (
        r.get("Decision Clicked", 0.0),
        r.get("Checkout Started", 0.0),
        r.get("Order Completed", 0.0),
        r.get("Product Added", 0.0),
    )
    values: dict[str, float] = {}
    for action in actions:
        p = click_probability(action, traits)
        if action in CHECKOUT:
            q1, q_sensitive, q_other = CHECKOUT[action]
            q2 = q_sensitive if traits.price_sensitive else q_other
            after = q1 * (q2 * max(click, checkout, order) + (1 - q2) * max(click, checkout))
            value = p * ((1 - q1) * click + after)
        elif action == "recommend_category":
            value = p * (RECOMMEND_ADD * max(click, add) + (1 - RECOMMEND_ADD) * click)
        else:
            value = p * click
        values[action] = value
    return values


def _traits(r: random.Random, index: int, cfg: EnvironmentConfig) -> Traits:
    known = r.random() < cfg.known_fraction
    anonymous_id = f"sim-anon-{cfg.seed}-{index}"
    user_id = f"sim-user-{cfg.seed}-{index}" if known else None
    return Traits(
        user_id or anonymous_id,
        anonymous_id,
        user_id,
        r.random() < (0.2 if known else 0.8),
        r.random() < 0.5,
        r.choice(CATEGORIES),
        r.uniform(0.06, 0.18),
        r.uniform(0.15, 0.45),
    )


class _Shelf:
    def __init__(self, seed: int) -> None:
        catalog = build_catalog(GeneratorConfig(seed=seed, users=1, products=240))
        self.by_category: dict[str, list[Product]] = {c: [] for c in CATEGORIES}
        for product in catalog:
            self.by_category[product.category].append(product)


class _User:
    """One user's timeline: the queue of events to come, organic state, cart."""

    __slots__ = ("cart", "env", "in_session", "last_ms", "n", "orders", "queue", "r", "t")

    def __init__(self, env: Environment, traits: Traits, seed: int, start_ms: int) -> None:
        self.env, self.t, self.r = env, traits, random.Random(seed)
        self.queue: deque[tuple[int, Event]] = deque()
        self.cart: dict[str, Product] = {}
        self.in_session, self.n, self.orders, self.last_ms = False, 0, 0, start_ms

    # -- events --------------------------------------------------------------------------------

    def emit(self, kind: str, name: str, properties: Event, gap_ms: int) -> int:
        """Queue one event ``gap_ms`` after the last queued one; return its time."""
        at = (self.queue[-1][0] if self.queue else self.last_ms) + gap_ms
        self.n += 1
        event: Event = {
            "type": kind,
            "messageId": f"{self.t.key}-{self.n}",
            "timestamp": iso_ms(at),
            "anonymousId": self.t.anonymous_id,
        }
        if self.t.user_id is not None:
            event["userId"] = self.t.user_id
        event["event" if kind == "track" else "name"] = name
        event["properties"] = properties
        self.queue.append((at, event))
        return at

    def dwell(self) -> int:
        return 500 + int(self.r.expovariate(1 / 25_000))

    def product(self, category: str | None = None) -> Product:
        r, t = self.r, self.t
        if category is None:
            share = 0.75 if t.focused else 0.35
            category = t.favourite if r.random() < share else r.choice(CATEGORIES)
        return r.choice(self.env.shelf.by_category[category])

    def view(self, product: Product, extra: Event | None = None) -> None:
        props: Event = {"product_id": product.product_id, "category": product.category}
        props |= {"price": product.price, **(extra or {})}
        self.emit("track", "Product Viewed", props, self.dwell())

    def add(self, product: Product, extra: Event | None = None) -> None:
        self.cart[product.product_id] = product
        props: Event = {"product_id": product.product_id, "category": product.category}
        props |= {"price": product.price, "quantity": 1, **(extra or {})}
        self.emit("track", "Product Added", props, 1_000 + self.r.randrange(5_000))

    def checkout(self, order_p: float, extra: Event) -> bool:
        """Checkout Started, then Order Completed with ``order_p``; True if ordered."""
        revenue = round(sum(p.price for p in self.cart.values()), 2)
        products = [{"product_id": p, "price": x.price} for p, x in self.cart.items()]
        props = {"revenue": revenue, "products": products, **extra}
        self.emit("track", "Checkout Started", props, 10_000 + self.r.randrange(20_000))
        if self.r.random() >= order_p:
            return False
        props = {"order_id": f"{self.t.key}-order-{self.n}", **props}
        self.emit("track", "Order Completed", props, 30_000 + self.r.randrange(60_000))
        self.cart.clear()
        self.orders += 1
        return True

    # -- organic behaviour ---------------------------------------------------------------------

    def organic(self, end_ms: int) -> None:
        """Queue the next organic step (nothing once the simulated period is over)."""
        r = self.r
        if not self.in_session:
            gap = 30 * MINUTE_MS + 1 + int(r.expovariate(self.env.config.sessions_per_day / DAY_MS))
            if self.last_ms + gap >= end_ms:
                return
            self.in_session = True
            self.emit("page", "Home", {"path": "/"}, gap)
            return
        if r.random() < SESSION_END:
            self.in_session = False
            if self.cart and r.random() < CART_VIEW:
                self.emit("track", "Cart Viewed", {"lines": len(self.cart)}, self.dwell())
                if r.random() < self.t.buy_rate:
                    self.checkout(ORDER, {})
            if not self.queue:
                self.organic(end_ms)
            return
        product = self.product()
        self.view(product)
        share = 1.5 if product.category == self.t.favourite else 1.0
        if len(self.cart) < _MAX_CART_LINES and r.random() < self.t.add_rate * share:
            self.add(product)

    # -- reactions -----------------------------------------------------------------------------

    def react(self, decision: Decision) -> bool:
        """Queue the reaction to a new decision; True if the user clicked."""
        r, action, did = self.r, decision.action, decision.decision_id
        tag = {"decision_id": did, "action": action}
        self.emit("track", "Decision Shown", tag, 200 + r.randrange(600))
        if r.random() >= click_probability(action, self.t):
            if action == "invite_signup" and r.random() < SIGNUP_ANNOY:
                self.in_session = False  # annoyed: leaves without finishing the session
            return False
        self.emit("track", "Decision Clicked", tag, 2_000 + r.randrange(6_000))
        if action in CHECKOUT:
            q1, q_sensitive, q_other = CHECKOUT[action]
            if self.cart and r.random() < q1:
                self.in_session = False
                self.checkout(q_sensitive if self.t.price_sensitive else q_other, tag)
        elif action == "recommend_category":
            category = decision.params.get("category")
            product = self.product(category if category in self.env.shelf.by_category else None)
            self.view(product, tag)
            if r.random() < RECOMMEND_ADD:
                self.add(product, tag)
        elif action == "invite_signup":
            self.emit("track", "Signed Up", tag, 5_000 + r.randrange(20_000))
        return True


@dataclass(slots=True)
class _Awaiting:
    user: _User
    decided: bool = False


class Environment:
    """Simulated users in event time; :meth:`next_event` then :meth:`observe`, repeatedly."""

    def __init__(self, config: EnvironmentConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self.shelf = _Shelf(config.seed)
        self.end_ms = config.start_ms + int(config.days * DAY_MS)
        self.users: dict[str, _User] = {}
        self._heap: list[tuple[int, int, str]] = []
        #: Every new decision that reached a user, in order.
        self.opportunities: list[Opportunity] = []
        self._awaiting: _Awaiting | None = None
        self._index = 0
        for index in range(config.users):
            traits = _traits(self._rng, index, config)
            user = _User(self, traits, self._rng.getrandbits(64), config.start_ms)
            self.users[traits.key] = user
            self._schedule(user, index)

    @property
    def traits(self) -> dict[str, Traits]:
        return {key: user.t for key, user in self.users.items()}

    def orders(self) -> dict[str, int]:
        """Orders completed per user key (organic and reactions)."""
        return {key: user.orders for key, user in self.users.items()}

    def _schedule(self, user: _User, index: int) -> None:
        if not user.queue:
            user.organic(self.end_ms)
        if user.queue:
            heapq.heappush(self._heap, (user.queue[0][0], index, user.t.key))

    def next_event(self) -> Event | None:
        """The next event in event time (users interleaved); None when the period is over."""
        self._release()
        if not self._heap:
            return None
        _, index, key = heapq.heappop(self._heap)
        user = self.users[key]
        at, event = user.queue.popleft()
        user.last_ms = at
        self._awaiting = _Awaiting(user)
        self._index = index
        return event

    def observe(self, decision: Decision) -> None:
        """The decision made for the event :meth:`next_event` returned last: its user reacts."""
        awaiting = self._awaiting
        if awaiting is None or awaiting.decided or decision.user_key != awaiting.user.t.key:
            raise ValueError("observe() takes the decision for the event just returned")
        awaiting.decided = True
        if (decision.policy or {}).get("sticky") or decision.reasons[0].rule in _FORCED:
            return
        user = awaiting.user
        if user.queue:
            return  # in the middle of a reaction or a checkout: nothing else reaches the user
        eligible = (decision.policy or {}).get("eligible") or [decision.action]
        values = true_action_values(user.t, eligible)
        value, best = values.get(decision.action, 0.0), max(values.values(), default=0.0)
        clicked = None if decision.action == self.config.default_action else user.react(decision)
        self.opportunities.append(Opportunity(decision, value, best, clicked))

    def _release(self) -> None:
        awaiting = self._awaiting
        if awaiting is not None:
            self._awaiting = None
            self._schedule(awaiting.user, self._index)

    def lines(self) -> Iterator[bytes]:
        """The events as NDJSON lines; feed each line's decision to :meth:`observe` before
        asking for the next (as :func:`stream.replay.replay_outputs` does when consumed)."""
        while (event := self.next_event()) is not None:
            yield orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE)
