"""Where a recording was made: the recorder's GPS, then the container's location tag, then the station."""
from ingest.describe.facts import ExifFacts, SidecarFacts
from ingest.describe.place import Place, choose_place

STATION = (31.2304, 121.4737)
TAGS = {"location": "+39.9042+116.4074+050.000/"}


def test_the_sidecar_gps_wins_over_exif_container_and_station():
    place = choose_place(SidecarFacts(lat=1.0, lon=2.0), ExifFacts(lat=3.0, lon=4.0), TAGS, STATION)
    assert place == Place(1.0, 2.0, "sidecar")


def test_exif_gps_wins_over_the_container_tag():
    assert choose_place(SidecarFacts(), ExifFacts(lat=3.0, lon=4.0), TAGS, STATION) == Place(3.0, 4.0, "exif")


def test_the_first_readable_container_location_tag_is_used():
    tags = {"location": "not a place", "xyz": "-33.8688+151.2093/"}
    assert choose_place(None, ExifFacts(), tags, STATION) == Place(-33.8688, 151.2093, "container")


def test_without_any_position_the_station_place_is_used_else_none():
    assert choose_place(None, None, {"location": "+99.0+0.0/"}, STATION) == Place(*STATION, "station")
    assert choose_place(None, None, {}, None) is None
