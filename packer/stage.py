"""The packer's entry point for the pipeline: pack an archive's segments into batches under a budget.

``pack_segments`` (``packer.pack``) does the packing; the budget rule (``packer.budget``) says when
``packer.budget_s: auto`` needs a measurement and what it resolves to.
"""

from __future__ import annotations

from vadpack.packer.budget import is_auto as is_auto
from vadpack.packer.budget import needs_measurement as needs_measurement
from vadpack.packer.budget import resolve_budget_s as resolve_budget_s
from vadpack.packer.pack import pack_segments as pack_segments
