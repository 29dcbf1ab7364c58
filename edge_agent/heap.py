"""Keep the cyclic garbage collector's full passes off the result path.

After start the agent holds a few hundred thousand long-lived objects (imported modules, the
validated config and manifests, LiteRT wrappers). Every so often CPython's oldest-generation
collection walks all of them: a 30 ms pause of every thread here, which at 1,000 windows/s was
the largest single cause of the latency tail (docs/benchmarks.md). `gc.freeze()` moves them out
of the collector's sight; what is allocated while serving is still collected as usual.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect what is garbage now and freeze the rest. Called once serving starts and after
    every model change: unfreezing first lets the pipelines just replaced be collected (frozen
    objects in a reference cycle would otherwise never be freed)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
