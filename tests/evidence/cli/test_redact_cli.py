"""`evidence redact` end to end on a real card: the copy is made, shown beside its original (both ways), verified,
and refused to a caller whose roles do not allow it, with the reason on the error (issue 18, part 2)."""
from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import cv2
import pytest

from tests.cli import bind_caller, invoke, run_cli, station_adopts_policy
from tests.helpers.renderers import wait_for_renderers
from tests.ingest.test_redaction_copies import _device
from tests.ingest.test_redaction_faces import _photographs


def _json(env: dict[str, str], *args: str) -> Any:
    result = run_cli(env, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.usefixtures("ffmpeg_available")
def test_evidence_redact_makes_a_copy_shown_beside_its_original_and_verified(env, tmp_path) -> None:
    station_adopts_policy(env)
    card = _device(tmp_path / "card")
    cv2.imwrite(str(card / "DCIM" / "100EVCAM" / "IMG_0003.JPG"),
                cv2.cvtColor(_photographs().astronaut(), cv2.COLOR_RGB2BGR))  # a real face
    rows = _json(env, "ingest", str(card), "--no-derive")["recordings"]
    clip = next(r for r in rows if r["original_name"] == "MVI_0001.MP4")
    rid = str(clip["id"])
    # An officer may not redact
    bind_caller(env, "officer", roles=("officer",))
    refused = invoke(env, "redact", rid, "--box", "1-2:96,64,96,96", "--reason", "公示")
    assert refused.exit_code == 2 and "may not redact" in refused.stderr, refused.output
    # A clerk's bad region is refused, every problem named, nothing made
    bind_caller(env, "clerk", roles=("clerk",))
    bad = invoke(env, "redact", rid, "--box", "2-1:300,0,64,64", "--mute", "x-1", "--reason", "公示")
    assert bad.exit_code == 2 and "'x' is not a time" in bad.output, bad.output
    bad = invoke(env, "redact", rid, "--box", "2-1:300,0,64,64", "--reason", "公示")
    assert bad.exit_code == 2 and "ends before it starts" in bad.stderr and "outside the 320×240" in bad.stderr
    # The clerk makes one
    made = json.loads(invoke(env, "redact", rid, "--box", "1-2:96,64,96,96", "--mute", "0.5-1.5",
                             "--reason", "公示前遮蔽", "--json").stdout)
    assert made["original_id"] == clip["id"] and made["version"] == 1 and made["new"]
    assert made["original_sha256"] == clip["sha256"] != made["sha256"]
    assert made["name"] == "MVI_0001.redacted-v1.mp4" and made["state"] in ("archived", "verified")
    # Each names the other
    copy = _json(env, "show", str(made["recording_id"]), "--reason", "核对")
    assert copy["redacted_from"]["id"] == clip["id"] and copy["redacted_from"]["sha256"] == clip["sha256"]
    assert copy["redacted_from"]["spec"]["boxes"][0] == {"start_s": 1.0, "end_s": 2.0, "x": 96, "y": 64, "w": 96,
                                                          "h": 96}
    original = _json(env, "show", rid, "--reason", "核对")
    assert original["redacted_from"] is None
    assert [c["id"] for c in original["redacted_copies"]] == [made["recording_id"]]
    # The copy's bytes are what its hash says; the original's are untouched
    got = invoke(env, "cat", str(made["recording_id"]), "--reason", "核对")
    assert hashlib.sha256(got.stdout_bytes).hexdigest() == made["sha256"]
    got = invoke(env, "cat", rid, "--reason", "核对")
    assert hashlib.sha256(got.stdout_bytes).hexdigest() == clip["sha256"]
    # A second version with a moving region and a bleep: a new copy, its keyframes and ranges in its record
    moving = invoke(env, "redact", rid, "--moving", "0.5:0,80,64,64;2.5:224,80,64,64", "--bleep", "1-2",
                    "--moving", "0:0,0,8,8", "--reason", "公示前遮蔽车牌")
    assert moving.exit_code == 2 and "at least two keyframes" in moving.output, moving.output
    second = json.loads(invoke(env, "redact", rid, "--moving", "0.5:0,80,64,64;2.5:224,80,64,64", "--bleep", "1-2",
                               "--reason", "公示前遮蔽车牌", "--json").stdout)
    assert second["version"] == 2 and second["new"] and second["sha256"] != made["sha256"]
    assert second["spec"]["moving"] == [{"keyframes": [{"t_s": 0.5, "x": 0, "y": 80, "w": 64, "h": 64},
                                                       {"t_s": 2.5, "x": 224, "y": 80, "w": 64, "h": 64}]}]
    assert second["spec"]["bleeps"] == [{"start_s": 1.0, "end_s": 2.0}] and second["spec"]["bleep_hz"] == 1000
    # A third with a region the tracker follows: what was asked, the tracker and its keyframes in the record
    bad = invoke(env, "redact", rid, "--track", "1:0,80,64,64", "--reason", "公示前遮蔽车牌")
    assert bad.exit_code == 2 and "needs START-END" in bad.output, bad.output
    third = json.loads(invoke(env, "redact", rid, "--track", "0.5-2.5:0,80,64,64", "--reason", "公示前遮蔽车牌",
                              "--json").stdout)
    assert third["version"] == 3 and third["new"] and third["spec"]["tracks"] == []
    tracking = third["spec"]["tracking"]
    assert tracking["tracker"].startswith("OpenCV ") and tracking["tracker"].endswith("TrackerMIL")
    assert tracking["followed"][0]["asked"] == {"start_s": 0.5, "end_s": 2.5, "x": 0, "y": 80, "w": 64, "h": 64}
    [followed] = third["spec"]["moving"]
    assert (followed["keyframes"][0]["t_s"], followed["keyframes"][-1]["t_s"]) == (0.5, 2.5)
    assert len(followed["keyframes"]) == tracking["followed"][0]["keyframes"] >= 10
    shown = _json(env, "show", str(third["recording_id"]), "--reason", "核对")
    assert shown["redacted_from"]["spec"]["tracking"] == tracking
    # Queued instead (the web app's way): the job, then the renderer started for it does it
    queued = json.loads(invoke(env, "redact", rid, "--box", "0-1:0,0,32,32", "--queue", "--reason", "排队遮蔽",
                               "--json").stdout)
    assert queued["state"] == "queued" and queued["renderer_pid"] > 0
    deadline = time.monotonic() + 120
    while (job := _json(env, "redact-job", str(queued["id"])))["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["state"] == "done" and job["copy_id"], job
    assert "done" in invoke(env, "redact-job", str(queued["id"])).stdout
    wait_for_renderers()
    # Faces found by the detector: the real one is hidden, and the specification says how it was found
    portrait = next(r for r in rows if r["original_name"] == "IMG_0003.JPG")
    faced = json.loads(invoke(env, "redact", str(portrait["id"]), "--faces", "--reason", "公示前遮蔽人脸",
                              "--json").stdout)
    assert faced["spec"]["face_regions"] == 1 and faced["spec"]["faces"]["detector"]["model"] == "CenterFace"
    assert faced["spec"]["faces"]["tracks"] == 1 and len(faced["spec"]["faces"]["detector"]["sha256"]) == 64
    shown = _json(env, "show", str(faced["recording_id"]), "--reason", "核对")
    assert shown["redacted_from"]["spec"]["faces"] == faced["spec"]["faces"]
    # A photo with no face, and nothing else asked, makes nothing
    no_face = next(r for r in rows if r["original_name"] == "IMG_0002.JPG")
    nothing = invoke(env, "redact", str(no_face["id"]), "--faces", "--reason", "公示")
    assert nothing.exit_code == 2 and "no face was found" in nothing.stderr, nothing.output
    # and the whole archive verifies, chain included
    bind_caller(env, "auditor", roles=("auditor",))
    verified = invoke(env, "verify", "--all")
    assert verified.exit_code == 0, verified.output
