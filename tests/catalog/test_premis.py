"""PREMIS: every custody kind has a Library of Congress event type, and a real package's premis.xml describes its
items and events.

No PREMIS 3 XSD is available offline (it is fetched from loc.gov, and no copy is vendored), so the XML is checked
for well-formedness, the PREMIS 3 namespace and version, and the element order the schema's sequences require for
the elements written; not validated against the schema itself."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from catalog.custody import CustodyKind
from catalog.premis import (
    AGENT_ROLE_SCHEME,
    EVENT_TYPE_SCHEME,
    PREMIS_NS,
    premis_event_type,
    premis_fields,
    premis_mapping,
    write_premis,
)
from tests.helpers.evidence_package import late_evening_package

P = f"{{{PREMIS_NS}}}"


@pytest.mark.parametrize("kind", list(CustodyKind))
def test_every_custody_kind_has_a_premis_event_type_and_agent_role(kind):
    """Fails for a CustodyKind added without a PREMIS mapping."""
    mapping = premis_mapping(kind)
    label, uri = premis_event_type(kind)
    assert label and uri == f"{EVENT_TYPE_SCHEME}/{mapping.event_code}" and len(mapping.event_code) == 3
    assert mapping.role_uri.startswith(f"{AGENT_ROLE_SCHEME}/") and mapping.role_label
    assert mapping.outcome in ("success", "failure")


def test_the_terms_are_the_vocabularys():
    assert premis_event_type("copied") == ("message digest calculation", f"{EVENT_TYPE_SCHEME}/mes")
    assert premis_event_type(CustodyKind.ARCHIVED) == ("ingestion", f"{EVENT_TYPE_SCHEME}/ing")
    assert premis_event_type("verified") == ("fixity check", f"{EVENT_TYPE_SCHEME}/fix")
    assert premis_event_type("disposed") == ("deletion", f"{EVENT_TYPE_SCHEME}/del")
    assert premis_event_type("key_certified") == ("digital signature generation", f"{EVENT_TYPE_SCHEME}/dsg")
    assert premis_fields("exported") == {
        "premis_event_type": "dissemination", "premis_event_type_uri": f"{EVENT_TYPE_SCHEME}/dis",
        "premis_agent_role": "implementer", "premis_agent_role_uri": f"{AGENT_ROLE_SCHEME}/imp"}
    with pytest.raises(ValueError, match="'teleported'"):
        premis_event_type("teleported")


def _children(element: ET.Element) -> list[str]:
    return [child.tag.removeprefix(P) for child in element]


def test_premis_xml_of_an_exported_package(env, tmp_path, ffmpeg_available):
    package = late_evening_package(env, tmp_path)
    path = write_premis(package.data)
    assert path == package.data / "premis.xml"
    root = ET.parse(path).getroot()  # well-formed
    assert root.tag == f"{P}premis" and root.get("version") == "3.0"
    assert _children(root) == sorted(_children(root), key=["object", "event", "agent"].index)

    objects = root.findall(f"{P}object")
    items = package.items()
    assert len(objects) == len(items) == 2
    for obj, item in zip(objects, items, strict=True):
        assert _children(obj) == ["objectIdentifier", "objectIdentifier", "objectCharacteristics", "originalName"]
        fixity = obj.find(f"{P}objectCharacteristics/{P}fixity")
        assert fixity is not None
        assert fixity.findtext(f"{P}messageDigestAlgorithm") == "SHA-256"
        assert fixity.findtext(f"{P}messageDigest") == item["sha256"]
        assert obj.findtext(f"{P}objectCharacteristics/{P}size") == str(item["size_bytes"])
        assert obj.findtext(f"{P}objectCharacteristics/{P}format/{P}formatDesignation/{P}formatName")

    events = root.findall(f"{P}event")
    lines = package.events()
    assert len(events) == len(lines) and len(lines) >= 8
    agents = {a.findtext(f"{P}agentIdentifier/{P}agentIdentifierValue") for a in root.findall(f"{P}agent")}
    for element, line in zip(events, lines, strict=True):
        assert _children(element)[:5] == ["eventIdentifier", "eventType", "eventDateTime", "eventDetailInformation",
                                          "eventOutcomeInformation"]
        assert element.findtext(f"{P}eventIdentifier/{P}eventIdentifierValue") == str(line["id"])
        event_type = element.find(f"{P}eventType")
        assert event_type is not None
        assert (event_type.text, event_type.get("valueURI")) == premis_event_type(line["kind"])
        assert element.findtext(f"{P}eventDateTime") == line["at"]
        assert element.findtext(f"{P}linkingAgentIdentifier/{P}linkingAgentIdentifierValue") in agents
        linked = element.findtext(f"{P}linkingObjectIdentifier/{P}linkingObjectIdentifierValue")
        assert linked == (None if line["recording_id"] is None else str(line["recording_id"]))
    kinds = {e.find(f"{P}eventType").text for e in events}  # type: ignore[union-attr]
    assert {"message digest calculation", "ingestion", "metadata modification", "digital signature generation",
            "creation"} <= kinds
