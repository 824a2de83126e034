"""Execution engines: ``local`` (worker processes on this machine) and ``ray`` (Ray Data)."""
