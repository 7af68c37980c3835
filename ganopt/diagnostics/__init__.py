"""Measurements taken on log steps, and the alarms that read them."""

from ganopt.diagnostics.alarms import GradientAlarm, NonFiniteGuard
from ganopt.diagnostics.measurements import Diagnostics
from ganopt.diagnostics.stats import Probe, grad_norms, to_host

__all__ = ["Diagnostics", "GradientAlarm", "NonFiniteGuard", "Probe", "grad_norms", "to_host"]
