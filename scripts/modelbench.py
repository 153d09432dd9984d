"""Micro-benchmark of :mod:`stream.models`: µs per call, ours next to River's equivalents.

    python -m scripts.modelbench                 # about 30 s on one core
    python -m scripts.modelbench --rounds 9 --calls 5000 --no-river

Inputs are ``--dim``-long vectors of seeded Gaussian noise (no clock, no global randomness in
what is measured). Each case runs ``--calls`` calls per round; the figure is the best round's
time per call (``time.perf_counter_ns``), the least disturbed by other processes. Models are
warmed up first (the softmax model knows all its ``--classes`` classes), so the figures are for
the steady state.

The "variants" section times the alternative pure-Python formulations that were considered for
the hot loops, so a regression or a faster idea can be checked on the machine at hand.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections.abc import Callable, Sequence
from itertools import cycle, islice
from operator import mul
from time import perf_counter_ns
from typing import Any

from stream.models import LogisticModel, RunningScaler, SoftmaxModel

Case = Callable[[], None]


def time_per_call(case: Callable[[int], None], calls: int, rounds: int) -> float:
    """Best round's µs per call; ``case(calls)`` makes ``calls`` calls."""
    best = math.inf
    for _ in range(rounds):
        start = perf_counter_ns()
        case(calls)
        best = min(best, (perf_counter_ns() - start) / calls / 1000.0)
    return best


def looped(fn: Callable[[Any], object], inputs: Sequence[Any]) -> Callable[[int], None]:
    """A case calling ``fn`` on the inputs in turn, ``calls`` times."""

    def run(calls: int) -> None:
        for item in islice(cycle(inputs), calls):
            fn(item)

    return run


def vectors(dim: int, count: int, seed: int) -> list[list[float]]:
    """Seeded raw feature vectors on mixed scales."""
    rng = random.Random(seed)
    return [[rng.gauss(0.0, 1.0) * (1 + i % 5) + i % 3 for i in range(dim)] for _ in range(count)]


def ours(args: argparse.Namespace, xs: list[list[float]]) -> dict[str, Callable[[int], None]]:
    """Our learners, warmed up on the inputs."""
    scaler = RunningScaler(args.dim)
    zs = [scaler.learn_transform(x) for x in xs]
    labels = [bool(i % 3 == 0) for i in range(len(zs))]
    classes = [f"c{i % args.classes:02d}" for i in range(len(zs))]
    logistic = LogisticModel(args.dim)
    softmax = SoftmaxModel(args.dim, max_classes=args.classes + 1)
    for z, y, c in zip(zs, labels, classes, strict=True):
        logistic.learn(z, y)
        softmax.learn(z, c)
    labelled = list(zip(zs, labels, strict=True))
    named = list(zip(zs, classes, strict=True))
    return {
        "scaler learn_transform": looped(scaler.learn_transform, xs),
        "scaler learn + transform": looped(
            lambda x: scaler.transform(x) if scaler.learn(x) else 0, xs
        ),
        "logistic predict_proba": looped(logistic.predict_proba, zs),
        "logistic learn": looped(lambda zy: logistic.learn(*zy), labelled),
        f"softmax predict ({args.classes} cl.)": looped(softmax.predict, zs),
        f"softmax learn ({args.classes} cl.)": looped(lambda zc: softmax.learn(*zc), named),
    }


def river_cases(
    args: argparse.Namespace, xs: list[list[float]]
) -> dict[str, Callable[[int], None]]:
    """River's equivalents on dicts ``{i: x[i]}``, warmed up the same way."""
    from river import linear_model, optim, preprocessing

    ds = [dict(enumerate(x)) for x in xs]
    # Any: River's methods are untyped, and mypy (strict) would reject every call.
    scaler: Any = preprocessing.StandardScaler()
    for d in ds:
        scaler.learn_one(d)
    zs = [scaler.transform_one(d) for d in ds]
    labels = [bool(i % 3 == 0) for i in range(len(ds))]
    logistic: Any = linear_model.LogisticRegression(optimizer=optim.SGD(0.01))
    pipeline: Any = preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optim.SGD(0.01)
    )
    softmax: Any = linear_model.SoftmaxRegression(optimizer=optim.SGD(0.01))
    for d, z, y, i in zip(ds, zs, labels, range(len(ds)), strict=True):
        logistic.learn_one(z, y)
        pipeline.learn_one(d, y)
        softmax.learn_one(z, f"c{i % args.classes:02d}")

    def scale(d: dict[int, float]) -> None:
        scaler.learn_one(d)
        scaler.transform_one(d)

    labelled = list(zip(zs, labels, strict=True))
    raw = list(zip(ds, labels, strict=True))
    named = [(z, f"c{i % args.classes:02d}") for i, z in enumerate(zs)]
    return {
        "scaler learn_transform": looped(scale, ds),
        "logistic predict_proba": looped(logistic.predict_proba_one, zs),
        "logistic learn": looped(lambda zy: logistic.learn_one(*zy), labelled),
        "pipeline predict_proba": looped(pipeline.predict_proba_one, ds),
        "pipeline learn": looped(lambda dy: pipeline.learn_one(*dy), raw),
        f"softmax predict ({args.classes} cl.)": looped(softmax.predict_proba_one, zs),
        f"softmax learn ({args.classes} cl.)": looped(lambda zc: softmax.learn_one(*zc), named),
    }


def variants(xs: list[list[float]]) -> dict[str, Callable[[int], None]]:
    """Alternative formulations of the hot loops (see the module docstring)."""
    w = [0.01 * (i % 7 - 3) for i in range(len(xs[0]))]
    g, lr = 0.3, 0.01

    def dot_loop(z: list[float]) -> float:
        acc = 0.0
        for a, b in zip(w, z, strict=True):
            acc += a * b
        return acc

    return {
        "dot: math.fsum(map(mul))  [used]": looped(lambda z: math.fsum(map(mul, w, z)), xs),
        "dot: sum(map(mul))": looped(lambda z: sum(map(mul, w, z)), xs),
        "dot: sum([a * b ...])": looped(
            lambda z: sum([a * b for a, b in zip(w, z, strict=True)]), xs
        ),
        "dot: for loop": looped(dot_loop, xs),
        "step: [w - lr * (z * g)]  [used]": looped(
            lambda z: [a - lr * (b * g) for a, b in zip(w, z, strict=True)], xs
        ),
        "step: [w - s * z], s = lr * g": looped(
            lambda z: [a - (lr * g) * b for a, b in zip(w, z, strict=True)], xs
        ),
        **_scaler_variants(xs),
    }


def _scaler_variants(xs: list[list[float]]) -> dict[str, Callable[[int], None]]:
    """Three comprehensions (update mean, update variance, transform) against our fused loop."""
    n = len(xs[0])
    state: dict[str, Any] = {"count": 0, "mean": [0.0] * n, "var": [0.0] * n}

    def comprehensions(x: list[float]) -> list[float]:
        count = state["count"] + 1
        old = state["mean"]
        mean = [m + (xi - m) / count for m, xi in zip(old, x, strict=True)]
        var = [
            v + ((xi - a) * (xi - b) - v) / count
            for v, xi, a, b in zip(state["var"], x, old, mean, strict=True)
        ]
        state.update(count=count, mean=mean, var=var)
        return [
            (xi - m) / math.sqrt(v) if v else 0.0 for xi, m, v in zip(x, mean, var, strict=True)
        ]

    def inverse_std(x: list[float]) -> list[float]:
        z = comprehensions(x)  # then precompute 1/std for later transforms
        state["inv"] = [1.0 / math.sqrt(v) if v else 0.0 for v in state["var"]]
        return z

    return {
        "scaler: fused loop  [used]": looped(RunningScaler(n).learn_transform, xs),
        "scaler: 3 comprehensions": looped(comprehensions, xs),
        "scaler: + precomputed 1/std": looped(inverse_std, xs),
    }


def table(rows: list[tuple[str, float, float | None]]) -> str:
    """The report: one line per case, ours and River's µs per call."""
    lines = [f"{'case':<38} {'ours µs':>9} {'River µs':>9} {'ratio':>6}"]
    for name, mine, theirs in rows:
        river = f"{theirs:9.2f}" if theirs is not None else f"{'':>9}"
        ratio = f"{theirs / mine:5.1f}x" if theirs is not None else ""
        lines.append(f"{name:<38} {mine:9.2f} {river} {ratio:>6}")
    return "\n".join(lines)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.modelbench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dim", type=int, default=56, help="vector length (default 56)")
    parser.add_argument("--classes", type=int, default=16, help="softmax classes (default 16)")
    parser.add_argument("--calls", type=int, default=3000, help="calls per round (default 3000)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; the best counts (7)")
    parser.add_argument("--seed", type=int, default=1, help="input seed (default 1)")
    parser.add_argument("--no-river", action="store_true", help="skip River's figures")
    parser.add_argument("--no-variants", action="store_true", help="skip the formulations")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    xs = vectors(args.dim, 500, args.seed)
    mine = {
        name: time_per_call(case, args.calls, args.rounds) for name, case in ours(args, xs).items()
    }
    theirs: dict[str, float] = {}
    if not args.no_river:
        cases = river_cases(args, xs)
        theirs = {
            name: time_per_call(case, args.calls, args.rounds) for name, case in cases.items()
        }
    rows = [(name, us, theirs.pop(name, None)) for name, us in mine.items()]
    rows += [(f"{name} (River only)", us, None) for name, us in theirs.items()]
    print(table(rows))
    if not args.no_variants:
        print("\nformulations")
        for name, case in variants(xs).items():
            print(f"{name:<38} {time_per_call(case, args.calls, args.rounds):9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
