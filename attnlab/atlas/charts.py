"""The atlas's charts, as Vega-Lite specs built with altair (``Page.chart`` draws them).

* ``metric_curves``: one line per series (a variant, a seed) with a band (an interval, or
  ± std), small multiples by metric; hovering a point shows its values, clicking a legend entry
  hides or shows that series (a legend-bound point selection that starts with every series).
* ``attention_explorer``: pick a sentence (dropdown) and see its attention matrix under every
  model side by side, source words across, output words down; hovering a cell shows its
  weight; teacher-forced attention (rows: the reference's words) with the task's gold links
  outlined, or decoding attention (rows: each model's own output). Cells shrink for long
  sentences, and panels per row follow, so a panel fits the page (``explorer_layout``).

Specs carry their data inline. Attention is stored compactly, one row per (model, sentence,
view, output position) holding that row's weights, and expanded in the browser (Vega-Lite
``flatten`` + ``window``), which keeps a sweep's page small.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import altair as alt

# Fixed [0, 1] colour scale (as attnlab.plots): panels stay comparable across models.
_SCHEME = "viridis"
_FORCED, _DECODING = "teacher-forced", "decoding"
_PREFIX = 10000  # axis keys are f"{_PREFIX + position}|{word}": unique, sorted by position


def _series_param(names: Sequence[str]) -> alt.Parameter:
  """A legend-bound selection holding the shown series: all at first, a click toggles one."""
  return alt.selection_point(name="shown", fields=["series"], bind="legend", toggle="true",
                             clear=False, empty=False, value=[{"series": n} for n in names])


def metric_curves(points: Sequence[Mapping], *, x_title: str, series_title: str,
                  x_type: str = "quantitative", log_x: bool = False, columns: int = 3,
                  detail: str | None = None, width: int = 260, height: int = 180) -> dict:
  """Small multiples of metric curves.

  Args:
    points: dicts with ``series`` (line label), ``panel`` (a small multiple's title: the metric,
      and any other setting), ``x``, ``y``, optional ``low`` / ``high`` (the band) and any
      other fields, all shown on hover (``tooltip`` names them: {field: title}).
    x_title, series_title: axis and legend titles.
    detail: a field drawing one line per value within a series (e.g. ``seed``).

  Returns:
    The Vega-Lite spec.
  """
  names = list(dict.fromkeys(p["series"] for p in points))
  shown = _series_param(names)
  extra = [k for k in dict.fromkeys(k for p in points for k in p)
           if k not in ("series", "panel", "x", "y", "low", "high")]
  x = alt.X("x", type=x_type, title=x_title,
            scale=alt.Scale(type="log", base=2) if log_x else alt.Undefined)
  color = alt.Color("series:N", title=series_title, scale=alt.Scale(domain=names),
                    legend=alt.Legend(symbolOpacity=1.0))
  on = lambda yes, no: alt.condition(shown, alt.value(yes), alt.value(no))  # noqa: E731
  tooltip = ([alt.Tooltip("series:N", title=series_title),
              alt.Tooltip("x", type=x_type, title=x_title),
              alt.Tooltip("y:Q", title="value", format=".4~f")]
             + [alt.Tooltip(f"{k}:N", title=k.replace("_", " ")) for k in extra])
  panels = []
  # One layered chart per panel, concatenated (not a facet: Vega-Lite's facet keeps the
  # selection's initial value per facet unit, and toggling then duplicates entries).
  for title in dict.fromkeys(p["panel"] for p in points):
    mine = [p for p in points if p["panel"] == title]
    base = alt.Chart(alt.Data(values=mine), title=title).encode(x=x, color=color)
    line = base.mark_line().encode(y=alt.Y("y:Q", title=None), opacity=on(1.0, 0.0))
    if detail:
      line = line.encode(detail=f"{detail}:N")
    dots = base.mark_point(filled=True).encode(y="y:Q", size=on(40, 0), opacity=on(1.0, 0.0),
                                               tooltip=tooltip)
    layers = [line, dots]
    if any("low" in p for p in mine):
      layers.insert(0, base.mark_area().encode(y="low:Q", y2="high:Q", opacity=on(0.18, 0.0)))
    if not panels:
      layers[0] = layers[0].add_params(shown)
    panels.append(alt.layer(*layers).properties(width=width, height=height))
  return alt.concat(*panels, columns=columns).to_dict()


def _axis_key(position: int, word: str) -> str:
  return f"{_PREFIX + position}|{word}"


def _rows(model: str, sentence: int, view: str, weights, words: Sequence[str],
          gold: Mapping[int, list[int]] | None) -> list[dict]:
  rows = []
  for j, (row, word) in enumerate(zip(weights, words)):
    entry = {"m": model, "e": sentence, "v": view, "y": _axis_key(j, word),
             "w": [round(float(w), 3) for w in row]}
    if gold and gold.get(j):
      entry["g"] = gold[j]
    rows.append(entry)
  return rows


# The explorer's panels fit a page this wide (the page's CSS caps it at 1600 px) with cells
# between these sizes; a longer sentence scrolls inside its chart.
_PAGE_PX, _LABELS_PX, _CELL_PX = 1400, 130, (9, 20)


def explorer_layout(src_len: int, out_len: int, columns: int) -> tuple[int, int, int]:
  """(cell px, label font px, panels per row) for sentences of up to ``src_len`` source and
  ``out_len`` output words: cells shrink from 20 to 9 px so a panel stays within the page's
  width where it can (a 60-word sentence: 15 px, one panel per row), and rows hold as many
  panels as fit, at most ``columns``."""
  longest = max(src_len, out_len, 1)
  step = max(_CELL_PX[0], min(_CELL_PX[1], (_PAGE_PX - _LABELS_PX) // longest))
  panel = step * src_len + _LABELS_PX
  return step, min(11, step - 2), max(1, min(columns, _PAGE_PX // panel))


def attention_explorer(models: Mapping[str, Sequence[Mapping]], sentences: Sequence[Mapping],
                       model_title: str = "model", columns: int = 3) -> dict:
  """The attention explorer's spec.

  Args:
    models: {model label: its examples}, each as ``attnlab.training.run_page`` writes them to
      attention_examples.json (``index``, ``prediction``, ``attention`` [len(prediction),
      len(src)], ``forced_attention`` [len(target) + 1, len(src)] or None).
    sentences: the sentences to offer, in menu order: dicts with ``index`` (the test
      example), ``src``, ``target``, ``gold`` ((tgt, src) links or None) and ``label`` (the
      menu entry); the first is shown first.
    model_title: what a model is (``variant``, ``seed``).

  Returns:
    The Vega-Lite spec (a facet per model), or None when no model has attention.
  """
  rows = []
  for model, examples in models.items():
    by_index = {ex["index"]: ex for ex in examples}
    for sentence in sentences:
      ex = by_index.get(sentence["index"])
      if ex is None or ex.get("attention") is None:
        continue
      rows += _rows(model, sentence["index"], _DECODING, ex["attention"], ex["prediction"], None)
      if ex.get("forced_attention") is not None:
        gold: dict[int, list[int]] = {}
        for t, s in sentence.get("gold") or ():
          gold.setdefault(t, []).append(s)
        words = list(sentence["target"]) + ["</s>"]
        rows += _rows(model, sentence["index"], _FORCED, ex["forced_attention"], words, gold)
  if not rows:
    return None
  views = [v for v in (_FORCED, _DECODING) if any(r["v"] == v for r in rows)]
  has_gold = any("g" in r for r in rows)
  pick = alt.param(name="sentence", value=sentences[0]["index"], bind=alt.binding_select(
      options=[s["index"] for s in sentences], labels=[s["label"] for s in sentences],
      name="sentence "))
  view = alt.param(name="view", value=views[0], bind=alt.binding_radio(
      options=views, name="attention "))
  words = alt.LookupData(alt.Data(values=[{"e": s["index"], "src": list(s["src"])}
                                          for s in sentences]), key="e", fields=["src"])
  step, font, columns = explorer_layout(max(len(s["src"]) for s in sentences),
                                        max(len(r["w"]) for r in rows), columns)
  label = f"slice(datum.value, {len(str(_PREFIX)) + 1})"
  x = alt.X("x:O", title=None, axis=alt.Axis(labelExpr=label, labelAngle=-50, orient="top",
                                              labelFontSize=font))
  y = alt.Y("y:O", title=None, axis=alt.Axis(labelExpr=label, labelFontSize=font))
  # Every transform precedes the facet (Vega-Lite cannot size independent discrete scales
  # from transforms inside a facet); a gold link outlines its cell.
  chart = (alt.Chart(alt.Data(values=rows))
           .transform_filter("datum.e == sentence && datum.v == view")
           .transform_lookup(lookup="e", from_=words)
           .transform_flatten(["w"])
           .transform_window(k="row_number()", groupby=["m", "e", "v", "y"])
           .transform_calculate(i="datum.k - 1")
           .transform_calculate(x=f"({_PREFIX} + datum.i) + '|' + datum.src[datum.i]",
                                source="datum.src[datum.i]",
                                output=f"slice(datum.y, {len(str(_PREFIX)) + 1})",
                                gold="isValid(datum.g) && indexof(datum.g, datum.i) >= 0",
                                gold_link="datum.gold ? 'yes' : 'no'")
           .mark_rect(strokeWidth=2.5).encode(
               x=x, y=y,
               # A fixed legend length: a facet's cell size is no signal the legend can read.
               color=alt.Color("w:Q", title="weight", legend=alt.Legend(gradientLength=160),
                               scale=alt.Scale(scheme=_SCHEME, domain=[0, 1])),
               stroke=alt.condition("datum.gold", alt.value("#ff3b30"), alt.value(None)),
               facet=alt.Facet("m:N", title=None, sort=list(models), columns=columns,
                               header=alt.Header(labelFontSize=13, labelFontWeight="bold")),
               tooltip=[alt.Tooltip("m:N", title=model_title),
                        alt.Tooltip("source:N", title="source word"),
                        alt.Tooltip("output:N", title="output word"),
                        alt.Tooltip("w:Q", title="weight", format=".3f")]
               + ([alt.Tooltip("gold_link:N", title="gold link")] if has_gold else []))
           .properties(width=alt.Step(step), height=alt.Step(step))
           .add_params(pick, view))
  return chart.resolve_scale(x="independent", y="independent").to_dict()
