"""The vadpack orchestrator: config, stage runner, store bookkeeping, CLI and engines."""
