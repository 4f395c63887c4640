"""A sweep's results, read back and summarized, without JAX: what ``experiments.report``
turns into tables, figures and the atlas, for anyone who installed attnlab::

    from attnlab import results
    trials, defaults = results.load_trials("/tmp/sweeps/long")  # a sweep's root or a workdir
    axes, groups = results.group_runs(trials)                    # seeds pooled per setting
    table = results.rows(axes, groups)                           # results.csv's rows

* ``trials``: reading the run record (``attnlab.run_record``) of every finished trial.
* ``statistics``: means, spreads and intervals over seeds; tests of one setting against another.
"""

from attnlab.results.statistics import (COSTS, METRICS, OVERALL, POPULATIONS, ROW_FIELDS,
                                        compare_settings, interval, regime, rows, sentence_stats,
                                        shared_models)
from attnlab.results.trials import (ResultsError, cost_scalars, group_runs, labels_from_name,
                                    load_trials, with_checkpoints, with_decodings)

__all__ = ["COSTS", "METRICS", "OVERALL", "POPULATIONS", "ROW_FIELDS", "ResultsError", "compare_settings",
           "cost_scalars", "group_runs", "interval", "labels_from_name", "load_trials", "regime",
           "rows", "sentence_stats", "shared_models", "with_checkpoints", "with_decodings"]
