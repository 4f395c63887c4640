"""A screenshot of an atlas page (``report/index.html`` or a run's ``report.html``) in headless
Chromium, for the README: ``python -m experiments.screenshot --page PAGE --out PNG``.

    python -m experiments.screenshot --page docs/long_sentence/index.html \
        --start '#metrics-vs-source-length' --height 2000 --out docs/atlas/long_sentence.png

Opens the page from disk (Debian's ``chromium``, or ``$ATTNLAB_CHROMIUM``, driven by
playwright from the ``[test]`` extra), waits until every chart is drawn, hovers a cell of the
attention explorer so the screenshot shows a weight's tooltip, and saves the top ``--height``
pixels of the page at ``--width`` (the whole page with ``--height 0``). The navigation bar,
sticky in a browser, is laid out in place for the picture (a full-page screenshot would
otherwise paint it over the charts where the hover scrolled). A console error or a page that
never reports itself drawn is one ``error:`` line and exit status 1; bad flags exit 2.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import sys
from collections.abc import Sequence

from absl import flags

from experiments import cli

# As tests/experiments/test_atlas.py starts it: no sandbox (root), no GPU, no background traffic.
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage")


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("page", None, "The atlas page (an .html file) to photograph.", flag_values=fv)
  flags.DEFINE_string("out", None, "The PNG file to write.", flag_values=fv)
  flags.DEFINE_integer("width", 1400, "Viewport width in pixels.", flag_values=fv)
  flags.DEFINE_integer("height", 2600, "Height of the picture (0: the whole page).",
                       flag_values=fv)
  flags.DEFINE_string("start", "", "CSS selector of the element the picture starts at (e.g. "
                      "'#metrics-vs-source-length'; default: the top of the page).",
                      flag_values=fv)


def chromium_path() -> str | None:
  """``$ATTNLAB_CHROMIUM``, else a Chromium on PATH."""
  candidates = [os.environ.get("ATTNLAB_CHROMIUM")] + [
      shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")]
  return next((c for c in candidates if c and os.path.exists(c)), None)


def screenshot(page_path: pathlib.Path, out: pathlib.Path, width: int, height: int,
               start: str = "") -> None:
  """Loads ``page_path``, hovers a cell of the attention explorer, writes ``out`` (PNG):
  ``height`` pixels from the top of the element ``start`` (a CSS selector) or of the page."""
  from playwright.sync_api import sync_playwright  # the [test] extra
  executable = chromium_path()
  if executable is None:
    raise RuntimeError("no Chromium: `apt-get install -y chromium` or set ATTNLAB_CHROMIUM")
  errors = []
  with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
    try:
      page = browser.new_page(viewport={"width": width, "height": 900})
      page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
      page.on("pageerror", lambda e: errors.append(str(e)))
      page.goto(page_path.resolve().as_uri())
      page.wait_for_selector("body[data-atlas-ready], body[data-atlas-error]", state="attached",
                             timeout=120_000)
      if errors or page.get_attribute("body", "data-atlas-error") is not None:
        raise RuntimeError(f"{page_path} did not draw: {errors or 'data-atlas-error'}")
      page.add_style_tag(content="nav { position: static !important; }")
      cells = page.query_selector_all("g.mark-rect.role-mark path")
      if cells:
        cells[len(cells) // 3].scroll_into_view_if_needed()
        box = cells[len(cells) // 3].bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_selector("#vg-tooltip-element.visible", timeout=5_000)
      out.parent.mkdir(parents=True, exist_ok=True)
      top = 0
      if start:
        element = page.query_selector(start)
        if element is None:
          raise RuntimeError(f"--start {start!r}: no such element in {page_path}")
        top = page.evaluate("e => e.getBoundingClientRect().top + window.scrollY", element)
      if height:
        page.screenshot(path=str(out), full_page=True,
                        clip={"x": 0, "y": top, "width": width, "height": height})
      else:
        page.screenshot(path=str(out), full_page=True)
    finally:
      browser.close()


def parse_flags(argv: Sequence[str] | None = None) -> flags.FlagValues:
  """The flags from ``argv`` (None: ``sys.argv[1:]``); bad flags exit 2 with one line."""
  return cli.parse(define_flags, argv, __doc__, required=("page", "out"))[0]


def main(argv: Sequence[str] | None = None) -> int:
  fv = parse_flags(argv)
  page_path = pathlib.Path(fv.page)
  if not page_path.is_file():
    cli.fail(f"--page {fv.page!r} is not a file")
  try:
    screenshot(page_path, pathlib.Path(fv.out), fv.width, fv.height, fv.start)
  except (RuntimeError, ImportError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"wrote {fv.out} ({os.path.getsize(fv.out) / 1e6:.2f} MB)")
  return 0


if __name__ == "__main__":
  cli.run(main)
