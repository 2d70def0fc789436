"""Task data for scoring: fetch it from Zenodo (or a mirror), verify it, prepare it ahead of submissions.

X-ARES 0.1.3 downloads each task's whole Zenodo record as one `files-archive` zip, with no checksum,
no resume, a temporary zip as large as the data set and `extractall`. The organizers' `aecc data`
replaces that step, producing the very folder X-ARES would (`ENV/<task>/<record files>` and the
`.audio_tar_ready` marker), so `aecc score --data ENV` reads it unchanged:

* `records`: which record holds each task (X-ARES's own `TaskConfig.zenodo_id`, read with `ast` from
  the runtime image's task modules) and what the record holds (Zenodo's REST API, or a mirror);
* `download`: resumable (HTTP Range), checked (md5/sha256), retrying (backoff, 429 and Retry-After),
  rate-limited downloads;
* `layout`: the task folder, intake's archive-safety rules for record names and ZIPs, hashing;
* `manifest`: `ENV/<task>/manifest.json` and `aecc data verify` (missing, truncated, changed, extra);
* `fetch`: the whole of `aecc data fetch`;
* `prepare`: `aecc data prepare`, the harness's prepare stage run ahead of any submission.

The command line is `harness/cli/data.py`. Importing this package reads and starts nothing.
"""

from __future__ import annotations
