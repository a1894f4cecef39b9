"""Property-based fuzzing with Hypothesis: the settings profiles and the property they share.

The property, for the token parser, the DEP client and the JSON API alike: any input gets a
result or one of the caller's typed errors, never another exception, in bounded time (each
example's deadline) and memory (`bounded` measures each call's peak).

Profiles, chosen by HYPOTHESIS_PROFILE: "ci" (the default, in `make test`) tries a hundred
examples per property, derandomised so a run is repeatable; "long" (`make fuzz`) tries thousands
and keeps the failures it finds in var/hypothesis, to try them first next time.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

T = TypeVar("T")

# A parser must not keep much more than its input in memory, whatever the input says.
MEMORY_LIMIT_BYTES = 32 * 1024 * 1024

settings.register_profile(
    "ci",
    max_examples=100,
    deadline=timedelta(seconds=2),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "long",
    max_examples=2_000,
    deadline=timedelta(seconds=5),
    database=DirectoryBasedExampleDatabase("var/hypothesis"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def bounded(call: Callable[[], T], *, expected: tuple[type[BaseException], ...]) -> T | None:
    """The call's result, or None for one of the `expected` errors; any other exception
    propagates (Hypothesis then shrinks and reports it), and so does a peak allocation past
    MEMORY_LIMIT_BYTES."""
    tracemalloc.start()
    try:
        return call()
    except expected:
        return None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < MEMORY_LIMIT_BYTES, f"{peak:,} bytes at peak"


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """`original` with a few bytes flipped, cut out, repeated or inserted, or cut short."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        kind = draw(st.sampled_from(["flip", "delete", "insert", "repeat", "truncate", "set"]))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x30, 0x80, 0x81, 0x84, 0xFF, 0x7F]))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 64))] * draw(st.integers(1, 8))
        else:
            del data[at:]
    return bytes(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=20), children, max_size=6)
    ),
    max_leaves=30,
)
