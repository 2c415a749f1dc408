"""An auditor narrows the logs to one case: the case's own events and every event of a recording it serves or
served, nothing of other recordings; the CSV is named after the case, starts with a UTF-8 BOM and reads as UTF-8."""
from __future__ import annotations

import csv
import io
import re

from tests.evidence.web.conftest import CASE
from tests.webhelpers import form_token, web_login


def test_an_auditor_reads_one_cases_events_and_downloads_them(web_site):
    client, _engine = web_site
    web_login(client, "clerk")
    token = form_token(client.get("/").text)
    client.post(f"/cases/{CASE}/link", data={"csrf": token, "recordings": "1 2", "purpose": "证明现场"})
    client.post(f"/cases/{CASE}/unlink", data={"csrf": token, "recording": "2", "reason": "误关联"})
    for rid in (1, 2, 3):  # views of recordings: 1 and 2 were the case's, 3 never
        client.get(f"/recordings/{rid}")
    client.cookies.clear()
    web_login(client, "auditor")
    page = client.get("/audit", params={"case": CASE}).text
    shown = set(re.findall(r'<td data-kind="([a-z_]+)"', page))
    assert {"case_opened", "case_linked", "case_unlinked", "viewed"} <= shown
    assert 'href="/recordings/1"' in page and 'href="/recordings/3"' not in page  # not another recording's

    download = client.get("/audit.csv", params={"case": CASE, "log": ""})
    assert download.status_code == 200 and download.content.startswith("\ufeff".encode())
    assert f"case-{CASE}" in download.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert {r["recording_id"] for r in table} == {"", "1", "2"}  # the case's own (no recording), 1 and 2, not 3
    assert {"case_opened", "case_linked", "case_unlinked", "viewed"} <= {r["kind"] for r in table}
    everything = client.get("/audit.csv").content.decode("utf-8-sig")
    assert len(list(csv.DictReader(io.StringIO(everything)))) > len(table)  # the filter took something away
