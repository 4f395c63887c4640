"""The attention atlas: self-contained HTML pages of runs and sweeps.

Each page is one file that opens from disk with no server and no network: Vega, Vega-Lite and
vega-embed inlined once (``vl_convert.javascript_bundle``), the charts as Vega-Lite specs built
with altair, the data inside the specs, a few lines of inline JS for sortable tables.

* ``page``: the page shell (``Page``: sections, sortable tables, charts), the decode index.
* ``charts``: the charts: metric curves with bands and a legend that hides/shows a series,
  the attention explorer (pick a sentence, every model side by side, gold links).
* ``run``: ``WORKDIR/report.html`` of one run, from its workdir files alone.

Everything here reads plain data (dicts and JSON files); nothing imports JAX.
"""
