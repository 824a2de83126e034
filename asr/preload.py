"""Imported once by the feature workers' forkserver, so that every worker forks with FunASR loaded.

Importing FunASR takes seconds; the server pays it once, quietly (see ``asr.funasr_compat``).
"""

from vadpack.asr.funasr_compat import funasr_tables

funasr_tables()
