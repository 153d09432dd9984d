"""Seeded synthetic Segment-spec clickstream generator.

The model is a small, fully deterministic simulated shop:

* **Catalog** -- ``GeneratorConfig.products`` products spread over twelve categories, each with
  a brand, a name, a SKU and a charm price drawn log-uniformly from a category price band.
  Within a category, product popularity follows a Zipf-like law.
* **Users** -- each user has planted ground truth (:class:`UserTraits`): a latent conversion
  propensity (Beta distributed), Dirichlet category affinities, an activity rate, an IANA
  timezone with a matching locale, one or two devices (web and/or iOS/Android app, each with its
  own stable ``anonymousId``) and, for registered users, a ``userId`` and profile traits.
* **Sessions** -- session starts follow a non-homogeneous Poisson process (thinning) whose rate
  follows a diurnal curve in the user's *local* time. Consecutive sessions of a user are
  separated by more than 30 minutes of inactivity; events inside a session are less than 20
  minutes apart, so sessions can be recovered with the usual 30-minute inactivity rule.
* **Funnel** -- a session lands on a page/screen, browses a few category lists or searches,
  views products (``Product Viewed``), adds some to the cart right after viewing them
  (``Product Added``, probability driven by propensity and category affinity), may view the cart
  and remove items, and may start (``Checkout Started``) and complete (``Order Completed``) a
  checkout. Carts do not survive the session. A registered user logs in (``identify``) at a
  session start or at checkout, once per device; from then on that device's events carry both
  ``anonymousId`` and ``userId``.

Everything derives from one ``random.Random(config.seed)``: it builds the catalog and the users
and hands every user a sub-seed for its own ``random.Random``, so one user's stream does not
depend on how the streams interleave. Per-user sessions are merged lazily with a heap keyed by
event time; only sessions in progress are materialised, so memory does not grow with the number
of events. There is no wall clock and no I/O.

>>> cfg = GeneratorConfig(users=5, days=0.5)
>>> first = next(generate_events(cfg))
>>> first["type"] in {"page", "screen"}, first["channel"]
(True, 'client')
>>> traits = user_traits(cfg)
>>> len(traits), all(0.0 <= t.propensity <= 1.0 for t in traits.values())
(5, True)
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import accumulate
from typing import Any
from urllib.parse import quote_plus
from zoneinfo import ZoneInfo

import orjson

__all__ = [
    "CATEGORIES",
    "DAY_MS",
    "SESSION_GAP_MS",
    "Device",
    "GeneratorConfig",
    "Product",
    "UserTraits",
    "build_catalog",
    "encode_ndjson",
    "generate_events",
    "iso_ms",
    "user_traits",
]

Event = dict[str, Any]
_Entry = tuple[int, int, int, list[tuple[int, Event]] | None]
DAY_MS = 86_400_000
SESSION_GAP_MS = 30 * 60_000
_MAX_DWELL_MS = 20 * 60_000
_BASE_URL = "https://shop.example.com"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# category -> (min price, max price, product nouns)
_CATEGORY_SPEC: dict[str, tuple[float, float, tuple[str, ...]]] = {
    "electronics": (9.99, 1499.0, ("headphones", "smartwatch", "tablet", "speaker", "charger")),
    "apparel": (7.99, 249.0, ("t-shirt", "jacket", "jeans", "sneakers", "hoodie")),
    "home": (4.99, 599.0, ("lamp", "cushion", "rug", "kettle", "blender")),
    "beauty": (3.99, 129.0, ("serum", "lipstick", "moisturizer", "shampoo", "perfume")),
    "sports": (5.99, 899.0, ("yoga mat", "dumbbells", "helmet", "running shorts", "racket")),
    "books": (4.99, 59.0, ("novel", "cookbook", "biography", "comic", "travel guide")),
    "toys": (3.99, 199.0, ("puzzle", "building set", "plush", "board game", "rc car")),
    "grocery": (0.99, 49.0, ("coffee", "olive oil", "granola", "tea", "chocolate")),
    "garden": (2.99, 399.0, ("planter", "hose", "seeds", "pruner", "grill")),
    "automotive": (4.99, 299.0, ("dash cam", "wiper blades", "car wax", "jump starter", "mats")),
    "pets": (2.99, 149.0, ("dog food", "cat tree", "leash", "aquarium", "chew toy")),
    "jewelry": (14.99, 999.0, ("necklace", "ring", "earrings", "bracelet", "watch")),
}
CATEGORIES: tuple[str, ...] = tuple(_CATEGORY_SPEC)
_SYLLABLES = ("nor", "vik", "lu", "mi", "na", "zen", "tor", "ka", "lio", "ves", "bri", "sol", "ara")
_ADJECTIVES = ("Classic", "Pro", "Lite", "Max", "Eco", "Urban", "Premium", "Mini", "Smart", "Air")
# timezone, locale, weight
_ZONES = (
    ("America/New_York", "en-US", 22),
    ("America/Chicago", "en-US", 12),
    ("America/Los_Angeles", "en-US", 14),
    ("Europe/London", "en-GB", 10),
    ("Europe/Berlin", "de-DE", 12),
    ("Europe/Paris", "fr-FR", 7),
    ("America/Sao_Paulo", "pt-BR", 6),
    ("Asia/Tokyo", "ja-JP", 8),
    ("Asia/Kolkata", "en-IN", 5),
    ("Australia/Sydney", "en-AU", 4),
)
_WK, _SF = "AppleWebKit/537.36 (KHTML, like Gecko)", "AppleWebKit/605.1.15 (KHTML, like Gecko)"
_MOBILE = "Mobile/15E148 Safari/604.1"
_UA_WIN = f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) {_WK} Chrome/124.0.0.0 Safari/537.36"
_UA_MAC = f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {_SF} Version/17.4 Safari/605.1.15"
_UA_IPHONE = f"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) {_SF} Version/17.4 {_MOBILE}"
_UA_ANDROID = (
    f"Mozilla/5.0 (Linux; Android 14; Pixel 8) {_WK} Chrome/124.0.0.0 Mobile Safari/537.36"
)
_UA_IPAD = f"Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) {_SF} Version/17.4 {_MOBILE}"
# device type, os name, os version, user agent, weight
_WEB = (
    ("desktop", "Windows", "10", _UA_WIN, 38),
    ("desktop", "Mac OS X", "10.15.7", _UA_MAC, 22),
    ("mobile", "iOS", "17.4", _UA_IPHONE, 17),
    ("mobile", "Android", "14", _UA_ANDROID, 15),
    ("tablet", "iOS", "17.4", _UA_IPAD, 8),
)
# platform, device type, manufacturer, model, os name, os version, weight
_APPS = (
    ("ios", "mobile", "Apple", "iPhone15,2", "iOS", "17.4", 45),
    ("ios", "tablet", "Apple", "iPad13,1", "iOS", "17.4", 7),
    ("android", "mobile", "Google", "Pixel 8", "Android", "14", 20),
    ("android", "mobile", "samsung", "SM-S911B", "Android", "14", 23),
    ("android", "tablet", "samsung", "SM-X710", "Android", "13", 5),
)
_LIBRARIES = {
    "web": ("analytics.js", "2.11.1"),
    "ios": ("analytics-ios", "4.1.8"),
    "android": ("analytics-android", "4.11.3"),
}
_REFERRERS = ("", "https://www.google.com/", "https://www.facebook.com/", "https://t.co/")
_REFERRER_CUM = tuple(accumulate((35, 45, 12, 8)))
_PLANS = ("free", "plus", "premium")
_DIURNAL_RAW: tuple[float, ...] = (0.15, 0.08, 0.05, 0.04, 0.04, 0.06, 0.2, 0.45, 0.7, 0.85)
_DIURNAL_RAW += (0.95, 1.0, 1.05, 1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.55, 1.7, 1.6, 1.2, 0.6)
#: Session-start rate multiplier per local hour (0-23), normalised to mean 1.
DIURNAL: tuple[float, ...] = tuple(w * 24 / sum(_DIURNAL_RAW) for w in _DIURNAL_RAW)
_DIURNAL_MAX = max(DIURNAL)
_PRODUCT_KEYS = ("product_id", "sku", "category", "name", "brand", "price")


@dataclass(frozen=True)
class GeneratorConfig:
    """Parameters of the synthetic shop; every field has a sensible default.

    Probabilities named ``*_rate`` are *base* rates, scaled per user by the propensity lift
    ``0.2 + 2 * propensity`` (and, for adds, by category affinity), then clipped to [0, 0.97].
    """

    seed: int = 7
    users: int = 200
    start_ms: int = 1_700_000_000_000
    days: float = 1.0
    products: int = 500
    sessions_per_user_per_day: float = 2.0
    login_fraction: float = 0.45  # share of users who are registered (have a userId)
    multi_device_fraction: float = 0.25  # share of users with a web and an app device
    primary_device_weight: float = 0.7  # chance a two-device user's session uses device 1
    propensity_alpha: float = 2.0  # Beta(alpha, beta) latent conversion propensity
    propensity_beta: float = 5.0
    affinity_concentration: float = 0.4  # Dirichlet concentration of category affinities
    mean_browse_steps: float = 3.0  # list/search pages per session
    mean_views_per_step: float = 2.0  # product detail views per list/search page
    search_rate: float = 0.3
    add_to_cart_rate: float = 0.12
    remove_rate: float = 0.1
    cart_view_rate: float = 0.6
    checkout_rate: float = 0.45
    purchase_rate: float = 0.7
    session_login_rate: float = 0.35  # registered, logged-out: log in at session start
    checkout_login_rate: float = 0.8  # registered, logged-out: log in at checkout
    mean_dwell_s: float = 35.0  # mean time between steps of a session

    def __post_init__(self) -> None:
        """Reject nonsense values with :class:`ValueError`."""
        if self.users < 1 or self.products < len(CATEGORIES) or self.start_ms < 0:
            raise ValueError("need users >= 1, products >= 12 and start_ms >= 0")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_rate", "_fraction", "_weight")):
                ok, rule = 0.0 <= value <= 1.0, "a probability in [0, 1]"
            elif f.name in ("mean_browse_steps", "mean_views_per_step"):
                ok, rule = 1.0 <= value < 1_000.0, "in [1, 1000)"
            elif f.type == "float":
                ok, rule = value > 0.0 and math.isfinite(value), "positive and finite"
            else:
                ok, rule = True, ""
            if not ok:
                raise ValueError(f"{f.name} must be {rule}, got {value!r}")


@dataclass(frozen=True)
class Product:
    """One catalog item (Segment e-commerce product fields)."""

    product_id: str
    sku: str
    category: str
    brand: str
    name: str
    price: float

    def properties(self) -> Event:
        """Return a fresh Segment product-properties dict (without quantity).

        >>> Product("p1", "S1", "toys", "Lumi", "Lumi Pro Puzzle", 9.99).properties()["price"]
        9.99
        """
        return {k: getattr(self, k) for k in _PRODUCT_KEYS} | {"currency": "USD"}


@dataclass(frozen=True)
class Device:
    """One device of a user; ``platform`` is ``"web"``, ``"ios"`` or ``"android"``."""

    anonymous_id: str
    platform: str
    device_type: str
    os_name: str
    os_version: str
    user_agent: str | None = None
    device_id: str | None = None
    manufacturer: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class UserTraits:
    """Planted ground truth for one simulated user.

    ``key`` is the ``userId`` of registered users and the first device's ``anonymousId``
    otherwise. ``category_affinity`` is aligned with :data:`CATEGORIES` and sums to 1.
    """

    key: str
    index: int
    user_id: str | None
    devices: tuple[Device, ...]
    timezone: str
    locale: str
    propensity: float
    category_affinity: tuple[float, ...]
    sessions_per_day: float
    plan: str | None
    created_at: str | None

    @property
    def anonymous_ids(self) -> tuple[str, ...]:
        """The ``anonymousId`` of every device of the user."""
        return tuple(d.anonymous_id for d in self.devices)

    @property
    def favourite_categories(self) -> tuple[str, ...]:
        """The three categories with the highest affinity, best first."""
        ranked = sorted(zip(self.category_affinity, CATEGORIES, strict=True), key=lambda x: -x[0])
        return tuple(c for _, c in ranked[:3])


@lru_cache(maxsize=1 << 14)
def _minute_prefix(minute: int) -> str:
    return (_EPOCH + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:")


def iso_ms(ms: int) -> str:
    """Format epoch milliseconds as ISO-8601 UTC with millisecond precision.

    >>> iso_ms(1_700_000_000_123)
    '2023-11-14T22:13:20.123Z'
    """
    minute, rem = divmod(ms, 60_000)
    sec, milli = divmod(rem, 1000)
    return f"{_minute_prefix(minute)}{sec:02d}.{milli:03d}Z"


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def _uuid4(r: random.Random) -> str:
    """A random (version 4, RFC 4122 variant) UUID string drawn from ``r``."""
    h = r.randbytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def _geometric(r: random.Random, mean: float) -> int:
    """Number of failures before a success, with the given mean (0 for mean 0)."""
    p_more = mean / (1.0 + mean)
    k = 0
    while r.random() < p_more:
        k += 1
    return k


def _pick(r: random.Random, rows: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    return r.choices(rows, weights=[row[-1] for row in rows])[0]


def _build_catalog(r: random.Random, n: int) -> tuple[Product, ...]:
    brands = {
        c: [(r.choice(_SYLLABLES) + r.choice(_SYLLABLES)).capitalize() for _ in range(4)]
        for c in CATEGORIES
    }
    out = []
    for i in range(n):
        cat = CATEGORIES[i % len(CATEGORIES)]
        lo, hi, nouns = _CATEGORY_SPEC[cat]
        price = math.exp(r.uniform(math.log(lo), math.log(hi)))
        price = round(math.floor(price) + 0.99, 2) if price >= 1 else round(price, 2)
        brand = r.choice(brands[cat])
        name = f"{brand} {r.choice(_ADJECTIVES)} {r.choice(nouns).title()}"
        sku = f"{cat[:3].upper()}-{i:05d}"
        out.append(Product(f"prod-{i:05d}", sku, cat, brand, name, price))
    return tuple(out)


def build_catalog(config: GeneratorConfig) -> tuple[Product, ...]:
    """Return the product catalog used by :func:`generate_events` for ``config``."""
    return _build_world(config)[0]


def _sample_device(r: random.Random, platform: str) -> Device:
    anon = f"anon-{r.getrandbits(96):024x}"
    if platform == "web":
        dtype, os_name, os_ver, ua, _ = _pick(r, _WEB)
        return Device(anon, "web", dtype, os_name, os_ver, user_agent=ua)
    rows = tuple(row for row in _APPS if row[0] == platform)
    _, dtype, maker, model, os_name, os_ver, _ = _pick(r, rows)
    return Device(anon, platform, dtype, os_name, os_ver, None, _uuid4(r).upper(), maker, model)


def _sample_user(r: random.Random, cfg: GeneratorConfig, index: int) -> tuple[UserTraits, int]:
    tz, locale, _ = _pick(r, _ZONES)
    primary = r.choices(("web", "ios", "android"), weights=(55, 25, 20))[0]
    platforms = [primary]
    if r.random() < cfg.multi_device_fraction:
        platforms.append(r.choice(("ios", "android")) if primary == "web" else "web")
    devices = tuple(_sample_device(r, p) for p in platforms)
    raw = [r.gammavariate(cfg.affinity_concentration, 1.0) + 1e-12 for _ in CATEGORIES]
    affinity = tuple(w / sum(raw) for w in raw)
    propensity = r.betavariate(cfg.propensity_alpha, cfg.propensity_beta)
    rate = r.gammavariate(2.0, cfg.sessions_per_user_per_day / 2.0)
    user_id = plan = created = None
    if r.random() < cfg.login_fraction:
        user_id, plan = f"user-{index}", r.choice(_PLANS)
        created = iso_ms(cfg.start_ms - r.randrange(DAY_MS, 1000 * DAY_MS))
    key = user_id or devices[0].anonymous_id
    traits = UserTraits(
        key, index, user_id, devices, tz, locale, propensity, affinity, rate, plan, created
    )
    return traits, r.getrandbits(64)


@lru_cache(maxsize=4)
def _build_world(
    config: GeneratorConfig,
) -> tuple[tuple[Product, ...], tuple[tuple[UserTraits, int], ...]]:
    r = random.Random(config.seed)
    catalog = _build_catalog(r, config.products)
    return catalog, tuple(_sample_user(r, config, i) for i in range(config.users))


class _Shelf:
    """Catalog index shared by all users: products and Zipf popularity per category."""

    def __init__(self, catalog: tuple[Product, ...]):
        self.products: dict[str, list[Product]] = {c: [] for c in CATEGORIES}
        for p in catalog:
            self.products[p.category].append(p)
        self.cum = {
            c: list(accumulate(1 / (k + 1) ** 0.8 for k in range(len(ps))))
            for c, ps in self.products.items()
        }
        self.props = {p.product_id: p.properties() for p in catalog}

    def pick(self, r: random.Random, cat: str) -> Product:
        return r.choices(self.products[cat], cum_weights=self.cum[cat])[0]

    def props_of(self, p: Product, **extra: Any) -> Event:
        return {**self.props[p.product_id], **extra}


def user_traits(config: GeneratorConfig) -> dict[str, UserTraits]:
    """Return the planted ground truth per user, keyed by :attr:`UserTraits.key`.

    These are exactly the traits :func:`generate_events` uses for the same ``config``.
    """
    return {t.key: t for t, _ in _build_world(config)[1]}


class _UserSim:
    """Mutable per-user simulation state: own RNG, login state and funnel probabilities."""

    def __init__(self, t: UserTraits, seed: int, shelf: _Shelf, cfg: GeneratorConfig):
        self.t, self.cfg, self.r, self.shelf = t, cfg, random.Random(seed), shelf
        self.zone = ZoneInfo(t.timezone)
        self.logged_in = [False] * len(t.devices)
        self.rate_max = t.sessions_per_day * max(DIURNAL) / DAY_MS
        self.lift = 0.2 + 2.0 * t.propensity
        top = max(t.category_affinity)
        self.p_add = [
            min(0.97, cfg.add_to_cart_rate * self.lift * (0.5 + a / top))
            for a in t.category_affinity
        ]
        self.cat_cum = list(accumulate(t.category_affinity))
        self.contexts = [_device_context(t, d) for d in t.devices]

    def next_session_start(self, after_ms: int, end_ms: int) -> int | None:
        """Next accepted start of the diurnally thinned Poisson process, or None past the end."""
        t = float(after_ms)
        while True:
            t += self.r.expovariate(self.rate_max)
            if t >= end_ms:
                return None
            hour = datetime.fromtimestamp(t / 1000, tz=self.zone).hour
            if self.r.random() * _DIURNAL_MAX < DIURNAL[hour]:
                return int(t)

    def session(self, start_ms: int) -> list[tuple[int, Event]]:
        """Simulate one session starting at ``start_ms``; return its (ms, event) pairs."""
        n = len(self.t.devices)
        dev = 0 if n == 1 or self.r.random() < self.cfg.primary_device_weight else 1
        s = _Session(self, dev, start_ms)
        s.run()
        return s.events


class _Session:
    """Builds the events of one session in time order."""

    def __init__(self, sim: _UserSim, dev: int, start_ms: int):
        self.sim, self.r, self.cfg, self.dev_index = sim, sim.r, sim.cfg, dev
        self.dev, self.ctx, self.shelf = sim.t.devices[dev], sim.contexts[dev], sim.shelf
        self.web = self.dev.platform == "web"
        self.ms = start_ms
        self.events: list[tuple[int, Event]] = []
        self.max_lag_ms = 800 if self.web else 5_000
        self.nested = tuple(k for k, v in self.ctx.items() if type(v) is dict)
        self.user_id = sim.t.user_id if sim.logged_in[dev] else None
        self.page: dict[str, str] = {}
        self.referrer = ""
        self.cart_id = f"cart-{self.r.getrandbits(64):016x}"

    def run(self) -> None:
        r, cfg = self.r, self.cfg
        self.referrer = r.choices(_REFERRERS, cum_weights=_REFERRER_CUM)[0] if self.web else ""
        self.view("Home", "/", "Shop - Home")
        if r.random() < cfg.session_login_rate:
            self.login()
        cart: dict[str, tuple[Product, int]] = {}
        for _ in range(1 + _geometric(r, cfg.mean_browse_steps - 1)):
            self.browse(cart)
        if cart:
            self.checkout(cart)

    def advance(self, mean_ms: float | None = None) -> None:
        mean = self.cfg.mean_dwell_s * 1000 if mean_ms is None else mean_ms
        self.ms += min(_MAX_DWELL_MS, 500 + int(self.r.expovariate(1 / mean)))

    def emit(self, kind: str, key: str, value: Any, properties: Event | None = None) -> None:
        """Append one event; ``key``/``value`` is ``event``/``name``/``traits`` by call type."""
        ms, r = self.ms, self.r
        lag = self.max_lag_ms * r.random() ** 3  # mostly quick, sometimes batched
        ev: Event = {
            "type": kind,
            "messageId": _uuid4(r),
            "timestamp": iso_ms(ms),
            "sentAt": iso_ms(ms + 3 + int(lag)),
            "anonymousId": self.dev.anonymous_id,
        }
        if self.user_id is not None:
            ev["userId"] = self.user_id
        ev[key] = value
        if properties is not None:
            ev["properties"] = properties
        ev["context"] = self.context()
        ev["channel"] = "client"
        self.events.append((ms, ev))

    def context(self) -> Event:
        """A fresh copy of the device context (no dict is shared between events)."""
        ctx = self.ctx.copy()
        for key in self.nested:
            ctx[key] = ctx[key].copy()
        if self.web:
            ctx["page"] = self.page.copy()
        return ctx

    def view(self, name: str, path: str, title: str) -> None:
        if not self.web:
            self.emit("screen", "name", name, {})
            return
        url = _BASE_URL + path
        self.page = {"path": path, "url": url, "title": title, "referrer": self.referrer}
        self.emit("page", "name", name, self.page.copy())
        self.referrer = url

    def track(self, event: str, properties: Event) -> None:
        self.ms += int(self.r.random() * 400)
        self.emit("track", "event", event, properties)

    def login(self) -> None:
        sim = self.sim
        if sim.t.user_id is None or sim.logged_in[self.dev_index]:
            return
        sim.logged_in[self.dev_index] = True
        self.user_id = sim.t.user_id
        self.ms += self.r.randint(2_000, 30_000)
        traits = {"plan": sim.t.plan, "created_at": sim.t.created_at}
        self.emit("identify", "traits", traits)

    def browse(self, cart: dict[str, tuple[Product, int]]) -> None:
        r, cfg, sim = self.r, self.cfg, self.sim
        ci = r.choices(range(len(CATEGORIES)), cum_weights=sim.cat_cum)[0]
        cat = CATEGORIES[ci]
        self.advance()
        if r.random() < cfg.search_rate:
            query = r.choice(_CATEGORY_SPEC[cat][2])
            if r.random() < 0.3:
                query = f"{self.shelf.pick(r, cat).brand.lower()} {query}"
            self.track("Products Searched", {"query": query})
            self.view("Search Results", f"/search?q={quote_plus(query)}", f"Search: {query}")
        else:
            self.view("Product List", f"/c/{cat}", f"Shop {cat.title()}")
            self.track("Product List Viewed", {"list_id": f"list-{cat}", "category": cat})
        for _ in range(1 + _geometric(r, cfg.mean_views_per_step - 1)):
            p = self.shelf.pick(r, cat)
            self.advance()
            self.view("Product Detail", f"/p/{p.product_id}", p.name)
            self.track("Product Viewed", self.shelf.props_of(p))
            if p.product_id not in cart and r.random() < sim.p_add[ci]:
                qty = 1 if r.random() < 0.85 else r.randint(2, 3)
                cart[p.product_id] = (p, qty)
                self.advance(4_000)
                props = self.shelf.props_of(p, quantity=qty, cart_id=self.cart_id)
                self.track("Product Added", props)

    def checkout(self, cart: dict[str, tuple[Product, int]]) -> None:
        r, cfg, lift = self.r, self.cfg, self.sim.lift
        removals = [pid for pid in cart if r.random() < cfg.remove_rate]
        if removals or r.random() < cfg.cart_view_rate:
            self.advance()
            self.view("Cart", "/cart", "Your Cart")
            self.track("Cart Viewed", {"cart_id": self.cart_id, "products": _lines(cart)})
            for pid in removals:
                p, qty = cart.pop(pid)
                self.advance(3_000)
                props = self.shelf.props_of(p, quantity=qty, cart_id=self.cart_id)
                self.track("Product Removed", props)
        if not cart or r.random() >= min(0.97, cfg.checkout_rate * lift):
            return
        if r.random() < cfg.checkout_login_rate:
            self.login()
        revenue = round(sum(p.price * q for p, q in cart.values()), 2)
        order = {
            "order_id": f"ord-{r.getrandbits(64):016x}",
            "value": revenue,
            "revenue": revenue,
            "currency": "USD",
            "products": _lines(cart),
        }
        self.advance()
        self.view("Checkout", "/checkout", "Checkout")
        self.track("Checkout Started", order)
        if r.random() >= min(0.97, cfg.purchase_rate * lift):
            return
        shipping = 0.0 if revenue >= 50 else 4.99
        tax = round(revenue * 0.08, 2)
        done = {**order, "total": round(revenue + shipping + tax, 2), "shipping": shipping}
        done["tax"] = tax
        del done["value"]
        self.advance(60_000)
        self.track("Order Completed", done)
        self.view("Order Confirmation", "/checkout/complete", "Thank you")


def _device_context(t: UserTraits, d: Device) -> Event:
    """Static part of ``context`` for one device (copied two levels deep per event)."""
    lib, version = _LIBRARIES[d.platform]
    ctx: Event = {"library": {"name": lib, "version": version}, "locale": t.locale}
    ctx["timezone"] = t.timezone
    ctx["os"] = {"name": d.os_name, "version": d.os_version}
    if d.platform == "web":
        ctx["device"] = {"type": d.device_type}
        ctx["userAgent"] = d.user_agent
        return ctx
    ctx["device"] = {"id": d.device_id, "type": d.device_type}
    ctx["device"] |= {"manufacturer": d.manufacturer, "model": d.model}
    ctx["app"] = {"name": "ShopLive", "version": "5.12.0", "build": "51200"}
    ctx["app"]["namespace"] = "com.example.shoplive"
    return ctx


def _lines(cart: dict[str, tuple[Product, int]]) -> list[Event]:
    return [{**{k: getattr(p, k) for k in _PRODUCT_KEYS}, "quantity": q} for p, q in cart.values()]


def generate_events(config: GeneratorConfig) -> Iterator[Event]:
    """Yield Segment-spec event dicts in non-decreasing event-time order.

    Users' sessions are merged lazily with a heap holding one entry per user: either the
    start time of the user's next session (not yet simulated) or the position inside the
    session in progress. Ties are broken by user index, so the order is deterministic.
    """
    catalog, users = _build_world(config)
    end_ms = config.start_ms + int(config.days * DAY_MS)
    shelf = _Shelf(catalog)
    sims = [_UserSim(t, seed, shelf, config) for t, seed in users]
    heap: list[_Entry] = []
    for i, sim in enumerate(sims):
        start = sim.next_session_start(config.start_ms, end_ms)
        if start is not None:
            heap.append((start, i, 0, None))
    heapq.heapify(heap)
    while heap:
        ms, i, pos, session = heap[0]
        if session is None:
            session = sims[i].session(ms)
            heapq.heapreplace(heap, (session[0][0], i, 0, session))
            continue
        yield session[pos][1]
        if pos + 1 < len(session):
            heapq.heapreplace(heap, (session[pos + 1][0], i, pos + 1, session))
            continue
        nxt = sims[i].next_session_start(ms + SESSION_GAP_MS + 1, end_ms)
        if nxt is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (nxt, i, 0, None))


def encode_ndjson(events: Iterable[Event]) -> Iterator[bytes]:
    """Encode each event as one orjson line terminated by ``b"\\n"``.

    >>> list(encode_ndjson([{"type": "track", "n": 1}]))
    [b'{"type":"track","n":1}\\n']
    """
    for event in events:
        yield orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE)
