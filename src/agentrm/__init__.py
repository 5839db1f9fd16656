"""agentrm: a resource manager for LLM agent systems.

Subpackages:

* :mod:`agentrm.kernel` -- the pure, deterministic policy kernel;
* :mod:`agentrm.specs` -- executable specification: invariants, reference model, contracts;
* :mod:`agentrm.adapters` -- the imperative shell: asyncio runtime, SQLite store,
  simulator, trace I/O and the ``agentrm`` command.
"""

__version__ = "0.1.0"
