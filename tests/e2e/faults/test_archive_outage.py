"""The archive (SeaweedFS S3 Object Lock) stopped mid-multipart-upload and started again."""
from __future__ import annotations

import pytest

from tests.conftest import wait_for
from tests.e2e.faults.conftest import Cluster

pytestmark = [pytest.mark.slow, pytest.mark.s3, pytest.mark.postgres]


def test_s3_stopped_mid_multipart_raises_staged_overdue_and_everything_is_verified_after(cluster: Cluster) -> None:
    a = cluster.a
    # Given three 20 MiB clips going up in 5 MiB parts from A's worker
    device = cluster.make_device("A900001", [20, 20, 20])
    a.dock(device)
    wait_for(cluster.uploading, 90, "a multipart upload with parts in the bucket")
    # When SeaweedFS stops mid-upload
    cluster.stop_weed()
    # Then A raises staged_overdue once recordings wait longer than EVIDENCE_STAGED_ALARM_S (5 s; bound 5 + 30 s)
    wait_for(lambda: a.alarm("staged_overdue") == 1, 35, "A's /metrics to raise staged_overdue")
    assert (a.metric("evidence_staged_recordings", station="A") or 0) >= 1
    # When it starts again (same folder and ports): everything is verified within 120 s, one version per object,
    # and the alarm clears
    cluster.start_weed()
    cluster.assert_healed([device], within_s=120)
    wait_for(lambda: a.alarm("staged_overdue") == 0, 30, "A's staged_overdue alarm to clear")
    assert a.metric("evidence_staged_recordings", station="A") == 0
