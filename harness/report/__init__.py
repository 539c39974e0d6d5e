"""Stage 7, the report. Takes specs, the leaderboard's rows and the records; gives each report's
reproduction study (study.py: the facts) as Markdown, one self-contained HTML page, and a LaTeX table with
BibTeX (render.py, from templates/). Reads records only: nothing here loads PyTorch."""
