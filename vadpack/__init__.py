"""vadpack: archives of long recordings -> VAD -> archive-wide packed batches -> FunASR -> Parquet.

The public Python API::

    import vadpack
    report = vadpack.run("configs/demo.yaml")
    tables = vadpack.read_tables("runs/demo/output")
"""

from vadpack.core import __version__
from vadpack.pipeline.api import RunReport, Tables, load_config, prune, read_tables, run, status

__all__ = ["RunReport", "Tables", "__version__", "load_config", "prune", "read_tables", "run", "status"]
