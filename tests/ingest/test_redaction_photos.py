"""Photos redacted as they are shown (issue 18, part 2): a phone's photo stored on its side with an EXIF orientation
is turned upright before its regions and faces are placed, and a phone's HEIC is decoded (pillow-heif) and redacted,
neither of which ffmpeg 5.1 could; the pixelation is the video's (cells on the picture's grid), flat inside and
exact outside. Real photographs (scikit-image's astronaut), real phone formats, the whole path through the archive."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import piexif
import pytest
from PIL import Image
from sqlmodel import Session, select

from catalog import Recording, open_catalog
from catalog.signing import load_or_create_key
from catalog.users import add_user
from ingest.config import Settings
from ingest.pipeline import ingest_folder
from ingest.redaction import RedactionSpec
from ingest.redaction.derivative import redact_recording
from ingest.redaction.faces import FaceSearch
from ingest.redaction.photo import open_photo, pixelate
from ingest.redaction.spec import Box
from storage import LocalStore
from tests.ingest.test_redaction_faces import _block_detail, _faces, _photographs


def test_a_photo_s_cells_are_flat_inside_its_regions_and_exact_outside() -> None:
    rgb = np.random.default_rng(7).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    box = Box(0.0, None, 40, 30, 100, 80)
    out = pixelate(rgb, [box], 16)
    inside = np.zeros((240, 320), dtype=bool)
    inside[30:110, 40:140] = True
    assert np.array_equal(out[~inside], rgb[~inside])  # nothing outside the region changes
    for top in range(16, 112, 16):  # every 16-px cell of the grid touching the region: one colour, its cell's mean
        for left in range(32, 144, 16):
            cell = (slice(max(top, 30), min(top + 16, 110)), slice(max(left, 40), min(left + 16, 140)))
            shown = out[cell].reshape(-1, 3)
            assert (shown == shown[0]).all()
            mean = np.rint(rgb[top:top + 16, left:left + 16].reshape(-1, 3).mean(axis=0))
            assert np.array_equal(shown[0], mean)


def _phone_card(root: Path) -> tuple[Path, np.ndarray]:
    """A phone's DCIM: the astronaut (512×384 as shown) stored on its side with EXIF orientation 6, and as HEIC."""
    shown = _photographs().astronaut()[:384]
    folder = root / "DCIM" / "100APPLE"
    folder.mkdir(parents=True)
    sideways = folder / "IMG_0001.JPG"
    Image.fromarray(shown).transpose(Image.Transpose.ROTATE_90).save(sideways, quality=95)
    piexif.insert(piexif.dump({"0th": {piexif.ImageIFD.Orientation: 6, piexif.ImageIFD.Make: b"Apple"},
                               "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2026:11:20 14:06:00"}}), str(sideways))
    import pillow_heif

    pillow_heif.register_heif_opener()
    Image.fromarray(shown).save(folder / "IMG_0002.HEIC", format="HEIF", quality=90)
    return root, shown


@pytest.mark.usefixtures("ffmpeg_available")
def test_a_phone_photo_on_its_side_and_a_heic_are_redacted_as_shown(tmp_path, catalog_url) -> None:
    settings = Settings.from_env({"EVIDENCE_HOME": str(tmp_path / "home"), "EVIDENCE_DATABASE_URL": catalog_url})
    engine = open_catalog(catalog_url)
    store = LocalStore(settings.store_path)
    try:
        card, shown = _phone_card(tmp_path / "card")
        report = ingest_folder(card, settings=settings, engine=engine, store=store)
        assert report.errors == [] and len(report.recordings) == 2, report
        [face] = _faces(shown)
        assert np.mean(_block_detail(shown, face)) > 8.0
        with Session(engine) as session:
            clerk = add_user(session, "clerk", roles=["clerk"], by="test")
            session.commit()
            sideways = session.exec(select(Recording).where(Recording.original_name == "IMG_0001.JPG")).one()
            heic = session.exec(select(Recording).where(Recording.original_name == "IMG_0002.HEIC")).one()
            key = load_or_create_key(settings.station_key_path)
            # The photo on its side: the face is found where a viewer sees it and hidden; the copy is upright
            made = redact_recording(session, store, settings, sideways, RedactionSpec(), user=clerk, reason="公示",
                                    key=key, via="test", faces=FaceSearch())
            with store.open(made.recording.sha256) as fh:
                copy = open_photo(fh.read(), "copy")
            assert copy.shape == shown.shape and (made.recording.width, made.recording.height) == (512, 384)
            assert _faces(copy) == [] and max(_block_detail(copy, face)) < 4.0
            spec = made.recording.technical["redaction"]["spec"]
            assert spec["face_regions"] == 1 and spec["faces"]["frames_searched"] == 1
            assert made.recording.technical["redaction"]["renderer"]["program"].startswith("Pillow")
            # outside the hidden region the copy is the photo as shown, within JPEG's error
            region = spec["boxes"][0]
            outside = np.ones(shown.shape[:2], dtype=bool)
            outside[max(0, region["y"] - 8):region["y"] + region["h"] + 8,
                    max(0, region["x"] - 8):region["x"] + region["w"] + 8] = False
            assert np.abs(copy.astype(np.int16) - shown.astype(np.int16))[outside].mean() < 3.0
            # The HEIC (ffmpeg cannot decode it): a region drawn over the head, in the picture's pixels
            x1, y1, x2, y2 = face
            pad_x, pad_y = (x2 - x1) * 3 // 10, (y2 - y1) * 3 // 10
            head = Box(0.0, None, x1 - pad_x, y1 - pad_y, x2 - x1 + 2 * pad_x, y2 - y1 + 2 * pad_y)
            hidden = redact_recording(session, store, settings, heic, RedactionSpec(boxes=(head,)), user=clerk,
                                      reason="公示", key=key, via="test")
            with store.open(hidden.recording.sha256) as fh:
                data = fh.read()
            assert data[:3] == b"\xff\xd8\xff" and hidden.recording.container == "jpeg"
            heic_copy = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            assert _faces(heic_copy) == [] and max(_block_detail(heic_copy, face)) < 4.0
            assert "Exif" not in Image.open(io.BytesIO(data)).info
    finally:
        engine.dispose()
