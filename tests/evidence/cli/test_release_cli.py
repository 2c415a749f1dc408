"""`evidence release` end to end on a real card (issue 18, part 3): a clerk proposes a transfer, legal review
approves it (never the proposer), the signed decision is in the store, and the release is withdrawn; a publication
of an unredacted original and an approval by a clerk are refused with the reason on the error."""
from __future__ import annotations

import json
import zipfile
from typing import Any

import pytest

from tests.cli import bind_caller, invoke, run_cli, station_adopts_policy
from tests.ingest.test_redaction_copies import _device


def _json(env: dict[str, str], *args: str) -> Any:
    result = run_cli(env, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.usefixtures("ffmpeg_available")
def test_evidence_release_proposes_decides_and_withdraws(env, tmp_path) -> None:
    station_adopts_policy(env)
    rows = _json(env, "ingest", str(_device(tmp_path / "card")), "--no-derive")["recordings"]
    ids = [str(r["id"]) for r in rows]
    bind_caller(env, "clerk", roles=("clerk",))
    # An unredacted original is not published
    refused = invoke(env, "release", "create", ids[0], "--kind", "publication", "--title", "整治公示",
                     "--recipient", "社会公众", "--basis", "政府信息公开条例", "--reason", "执法公示")
    assert refused.exit_code == 2 and "publish a redacted copy instead" in refused.stderr, refused.output
    made = _json(env, "release", "create", *ids, "--kind", "transfer", "--title", "无照经营案证据",
                 "--recipient", "区人民检察院", "--basis", "《行政执法机关移送涉嫌犯罪案件的规定》", "--reason", "移送")
    assert made["state"] == "proposed" and [str(i["recording_id"]) for i in made["items"]] == ids
    number = str(made["id"])
    # The clerk may not approve; nor may the proposer, even holding the legal-review role too
    assert invoke(env, "release", "approve", number, "--note", "同意").exit_code != 0
    bind_caller(env, "both", roles=("clerk", "reviewer"))
    mine = _json(env, "release", "create", ids[0], "--kind", "transfer", "--title", "补充证据", "--recipient",
                 "区人民法院", "--basis", "行政诉讼法", "--reason", "应诉")
    own = invoke(env, "release", "approve", str(mine["id"]), "--note", "同意")
    assert own.exit_code == 2 and "no self-approval" in own.stderr, own.output
    # Legal review approves: a signed record in the store
    bind_caller(env, "reviewer", roles=("reviewer",))
    approved = _json(env, "release", "approve", number, "--note", "符合移送条件")
    assert approved["state"] == "approved" and approved["decided_by"] == "reviewer"
    assert len(approved["records"]) == 1
    assert approved["records"][0].startswith(f"releases/release-{int(number):06d}-01-approved-")
    shown = invoke(env, "release", "show", number)
    assert shown.exit_code == 0 and "区人民检察院" in shown.stdout and "signed record releases/" in shown.stdout
    # Handed over as a package the examiner's verify.py accepts, the signed decision inside
    bind_caller(env, "clerk", roles=("clerk",))
    package = _json(env, "release", "package", number, "--out", str(tmp_path / "release.zip"))
    assert package["items"] == len(ids) and package["path"].endswith("release.zip")
    with zipfile.ZipFile(package["path"]) as archive:
        names = archive.namelist()
    assert any(n.startswith(f"release/data/release/records/release-{int(number):06d}-01-approved-") for n in names)
    summary = invoke(env, "release", "summary", number)
    assert summary.exit_code == 0 and "移送" in summary.stdout and "区人民检察院" not in summary.stdout
    # Shared with one recipient: the path and code shown once; listed on the release; revoked
    link = _json(env, "release", "share", number, "--recipient", "区检察院 王检察官", "--days", "3")
    assert link["path"].startswith("/share/") and len(link["code"]) == 8 and link["recipient"] == "区检察院 王检察官"
    assert f"share link {link['id']} for 区检察院 王检察官" in invoke(env, "release", "show", number).stdout
    revoked = _json(env, "release", "unshare", str(link["id"]), "--reason", "改为当面移交")
    assert revoked["revoke_reason"] == "改为当面移交"
    assert invoke(env, "release", "unshare", str(link["id"]), "--reason", "再撤").exit_code == 2
    # Withdrawn by the proposer; listed as such
    bind_caller(env, "clerk", roles=("clerk",))
    withdrawn = _json(env, "release", "withdraw", number, "--reason", "退回补充侦查")
    assert withdrawn["state"] == "withdrawn" and len(withdrawn["records"]) == 2
    listed = _json(env, "release", "list", "--state", "withdrawn")["releases"]
    assert [r["id"] for r in listed] == [made["id"]]
    again = invoke(env, "release", "withdraw", number, "--reason", "再撤")
    assert again.exit_code == 2 and "only a proposed or approved one is withdrawn" in again.stderr
    # The custody of an item tells the whole story, and the archive verifies
    bind_caller(env, "auditor", roles=("auditor",))
    verified = invoke(env, "verify", "--all")
    assert verified.exit_code == 0, verified.output
