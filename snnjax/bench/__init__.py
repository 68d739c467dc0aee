"""``snnjax bench``: cost tables (rule × T), the Guo et al. design-space grid, a memory planner.

Its modules, one role each: :mod:`snnjax.bench.rows` (measured cost rows and the grid),
:mod:`snnjax.bench.planner` (the largest T or batch, or the schedule, that fits a budget),
:mod:`snnjax.bench.plots`, :mod:`snnjax.bench.text` (sizes, tables, plan lines) and
:mod:`snnjax.bench.command` (the command line: ``snnjax bench --help``).
"""

from snnjax.bench.command import add_parser as add_parser
from snnjax.bench.command import main as main
from snnjax.bench.planner import PLAN_NOTE as PLAN_NOTE
from snnjax.bench.planner import Largest as Largest
from snnjax.bench.planner import largest as largest
from snnjax.bench.planner import plan_budget as plan_budget
from snnjax.bench.planner import plan_rows as plan_rows
from snnjax.bench.planner import schedule_rows as schedule_rows
from snnjax.bench.plots import plot_cost as plot_cost
from snnjax.bench.plots import plot_grid as plot_grid
from snnjax.bench.plots import require_matplotlib as require_matplotlib
from snnjax.bench.rows import cost_rows as cost_rows
from snnjax.bench.rows import grid_rows as grid_rows
from snnjax.bench.text import format_table as format_table
from snnjax.bench.text import parse_bytes as parse_bytes

__all__ = [
    "add_parser",
    "parse_bytes",
    "cost_rows",
    "grid_rows",
    "Largest",
    "largest",
    "plan_budget",
    "plan_rows",
    "schedule_rows",
    "plot_cost",
    "plot_grid",
    "format_table",
]
