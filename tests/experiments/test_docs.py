"""README.md and docs/*.md: a table of contents and a results figure near the top, the long
result sections on their own pages in docs/ (linked from a summary), and every relative link
and image resolving from where it is written."""

import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PAGES = ("long_sentence", "kjv_length", "multi30k", "score_scaling", "alignment", "mechanisms",
         "benchmark")
KEPT = ("Quickstart", "Running experiments", "Attention variants", "Models in Python",
        "Adding a task")


def _text(path: pathlib.Path) -> str:
  return path.read_text(encoding="utf-8")


def _anchor(heading: str) -> str:
  """GitHub's anchor for a heading: lower case, punctuation dropped, spaces -> hyphens."""
  return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _headings(text: str, level: str = "##") -> list[str]:
  body = re.sub(r"```.*?```", "", text, flags=re.DOTALL)  # not the code blocks' comments
  return re.findall(rf"^{level} (.+)$", body, flags=re.MULTILINE)


def _links(text: str) -> list[str]:
  body = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
  return re.findall(r"\]\(([^)\s]+)\)", body)


def _top(text: str) -> str:
  """The README's top: its sections before "Running experiments" (contents, Quickstart,
  results at a glance)."""
  return text[:text.index("\n## Running experiments\n")]


def test_readme_starts_with_a_table_of_contents_of_every_section():
  top = _top(_text(README))
  assert "\n## Contents\n" in top
  contents = top[top.index("\n## Contents\n"):]
  anchors = {link[1:] for link in _links(contents) if link.startswith("#")}
  for heading in _headings(_text(README)):
    if heading != "Contents":
      assert _anchor(heading) in anchors, heading


def test_readme_shows_a_results_figure_near_the_top_after_the_quickstart_commands():
  text = _text(README)
  first_command = re.search(r"```bash\n(.*)\n", text).group(1)
  assert "attnlab.main --config configs/date.py" in first_command  # the Quickstart's, first
  top = _top(text)
  top = top[top.index("\n## Results at a glance\n"):]
  images = re.findall(r"!\[[^\]]*\]\((docs/[^)]+\.png)\)", top)
  assert images, "no results-at-a-glance figure near the top"
  assert (REPO / images[0]).is_file()
  after = top[top.index(images[0]):]
  assert "python -m experiments.sweep" in after and "python -m experiments.report" in after


@pytest.mark.parametrize("page", PAGES)
def test_long_results_live_in_docs_pages_linked_from_the_readme(page):
  text = _text(REPO / "docs" / f"{page}.md")
  assert text.startswith("# ")
  assert f"docs/{page}.md" in _links(_text(README))
  assert "../README.md" in text  # and back


def test_the_readme_keeps_its_how_to_sections_and_sheds_the_long_tables():
  readme = _text(README)
  headings = _headings(readme)
  for kept in KEPT:
    assert kept in headings, kept
  for moved in ("### Toy translation", "### English -> Marathi (Tatoeba)",
                "| variant | train_len | 1-5 (36) |", "| variant | dim | exact match |"):
    assert moved not in readme


@pytest.mark.parametrize("path", [README, *(REPO / "docs" / f"{p}.md" for p in PAGES)],
                         ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_and_images_resolve(path):
  text = _text(path)
  for link in _links(text):
    if link.startswith(("http://", "https://", "mailto:")):
      continue
    target, _, fragment = link.partition("#")
    resolved = (path.parent / target).resolve() if target else path
    assert resolved.exists(), f"{path.name}: {link}"
    if fragment and resolved.suffix == ".md":
      anchors = {_anchor(h) for h in _headings(_text(resolved), "#{1,6}")}
      assert fragment in anchors, f"{path.name}: {link}"
