"""The data-quality gate: Great Expectations suites as code and the checkpoint runner.

Modules: :mod:`expectations.raw` and :mod:`expectations.marts` hold the suites
(one module per dataset), :mod:`expectations.gate` runs them
(``run_gate("raw" | "marts", ...)``), :mod:`expectations.spec` holds what the
suite modules share.

Importing this package imports nothing heavy; importing ``gate``, ``raw`` or
``marts`` imports GX (several seconds), so DAG files import them inside tasks.

No usage statistics leave the machine: the default below is set before any GX
module is imported (they all live below this package), and the runner also
writes ``analytics_enabled: false`` into the data context's configuration. An
operator who sets ``GX_ANALYTICS_ENABLED`` explicitly keeps their value.
"""

import os

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
