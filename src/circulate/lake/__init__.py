"""The scale-out path: a hive-partitioned Parquet lake (scheme / month) and month marts.

:mod:`circulate.lake.layout` writes a built warehouse's staging tables into the lake and
lists and reads its partitions; :mod:`circulate.lake.months` computes the month marts of
one partition with the warehouse's own models and combines the months. ``flows/fanout.py``
maps :func:`compute_month` over the partitions on a Dask cluster; docs/scaling.md says
when to switch to it.
"""

from circulate.lake.layout import (
    SCHEME_TABLES,
    Partition,
    list_partitions,
    list_schemes,
    month_key,
    parse_month,
    read_partition,
    read_scheme_table,
    scheme_name,
    write_lake,
)
from circulate.lake.months import (
    HISTORY_MARTS,
    MONTH_MARTS,
    MonthMart,
    MonthResult,
    combine,
    compute_month,
    opening_supplies,
    read_mart,
    write_marts,
)

__all__ = [
    "HISTORY_MARTS",
    "MONTH_MARTS",
    "SCHEME_TABLES",
    "MonthMart",
    "MonthResult",
    "Partition",
    "combine",
    "compute_month",
    "list_partitions",
    "list_schemes",
    "month_key",
    "opening_supplies",
    "parse_month",
    "read_mart",
    "read_partition",
    "read_scheme_table",
    "scheme_name",
    "write_lake",
    "write_marts",
]
