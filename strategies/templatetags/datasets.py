"""Template tags about a workspace's datasets for pages of the apps below strategies (accounts'
new-key page shows a ready-to-run example over one), which cannot import this app themselves."""

from __future__ import annotations

from django import template
from django.db.models import Count

from accounts.models import Workspace
from strategies.models import Dataset

register = template.Library()


@register.simple_tag
def example_dataset(workspace: Workspace) -> Dataset | None:
    """A dataset of the workspace for the laptop example: a one-symbol one, else any."""
    datasets = Dataset.objects.for_workspace(workspace).annotate(symbols=Count("files"))
    return datasets.order_by("symbols", "-created_at").first()
