"""Accuracy harness: exact Gaussian laws, closed-form metrics, order studies."""

from .gaussian_law import initial_law, propagate, reverse_process_law
from .metrics import METRICS
from .order import OrderStudy, exact_error, order_study, plot_studies

__all__ = ["METRICS", "OrderStudy", "exact_error", "initial_law", "order_study", "plot_studies", "propagate",
           "reverse_process_law"]
