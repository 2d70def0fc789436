"""rank: the last stage. Verified results (and published reference rows) become the two leaderboards.

    inputs (verify, read)  ->  tasksets (which tasks)  ->  formula (normalise, weight, tie)
        ->  bootstrap (paired resamples of the test clips: intervals, rank distributions, ties)
        ->  board (leaderboard.json, schema-checked)  ->  outputs / page (CSV, Markdown, index.html)

The page and the files are rendered from the validated leaderboard document only, so what a person
sees is exactly what `leaderboard.json` says. Importing this package reads nothing.
"""

from __future__ import annotations
