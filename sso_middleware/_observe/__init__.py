"""Metrics (Prometheus) and the seams that feed them; the health check's routes live in ``_wsgi``.

* :mod:`.recorder`: the :class:`Recorder` each seam calls (silent with metrics off);
* :mod:`.seams`: the store wrapper and the provider-call decorator;
* :mod:`.labels`: the fixed label values;
* :mod:`.instruments`: the ``prometheus_client`` objects (imported only with metrics on);
* :mod:`.settings`: the checks of the settings.
"""

from .recorder import NO_METRICS, Metrics, Recorder, metrics_for, metrics_on
from .seams import observed_backend, observed_provider_call

__all__ = ["NO_METRICS", "Metrics", "Recorder", "metrics_for", "metrics_on", "observed_backend",
           "observed_provider_call"]
