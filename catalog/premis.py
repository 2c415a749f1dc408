"""PREMIS (Preservation Metadata: Implementation Strategies, version 3.0) for evidence packages.

An archivist or a court's IT expert reads preservation histories in PREMIS terms, not in this system's custody
kinds. Each CustodyKind therefore maps to one event type of the Library of Congress PREMIS event type vocabulary
(http://id.loc.gov/vocabulary/preservation/eventType) and to the role its actor plays (eventRelatedAgentRole).
The mapping is total: tests/catalog/test_premis.py fails when a kind is added without one. `write_premis` turns a
package's items.json and custody/events.jsonl into data/premis.xml (objects with their SHA-256 fixity, size and
format; one event per custody event, linked to its object and agent; the agents). The file restates what the
package's signed manifests and hashed events say; it is not itself signed (the bag's manifests cover it).
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.custody import CustodyKind
from catalog.manifests import software_version
from catalog.package_files import PackageFiles, read_package

__all__ = ["AGENT_ROLE_SCHEME", "EVENT_TYPE_SCHEME", "PREMIS_NS", "PremisMapping", "premis_document",
           "premis_event_type", "premis_fields", "premis_mapping", "write_premis"]

PREMIS_NS = "http://www.loc.gov/premis/v3"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
#: The LoC vocabularies the terms come from (a term's URI is the scheme, "/", its code).
EVENT_TYPE_SCHEME = "http://id.loc.gov/vocabulary/preservation/eventType"
AGENT_ROLE_SCHEME = "http://id.loc.gov/vocabulary/preservation/eventRelatedAgentRole"
HASH_SCHEME = "http://id.loc.gov/vocabulary/preservation/cryptographicHashFunctions"

#: The eventType terms used (code → label, as id.loc.gov spells them).
EVENT_TYPES = {
    "acc": "accession", "app": "appraisal", "cre": "creation", "dea": "deaccession", "del": "deletion",
    "dis": "dissemination", "dsg": "digital signature generation", "dsp": "displaying", "fix": "fixity check",
    "ine": "ingestion end", "ing": "ingestion", "ins": "ingestion start", "mem": "metadata modification",
    "mes": "message digest calculation", "poa": "policy assignment", "red": "redaction", "val": "validation",
}
#: The eventRelatedAgentRole terms (code → label).
AGENT_ROLES = {"aut": "authorizer", "exe": "executing program", "imp": "implementer", "val": "validator"}


@dataclass(frozen=True)
class PremisMapping:
    """What one custody kind is in PREMIS: its event type, its actor's role and the outcome it records."""
    event_code: str
    role_code: str
    outcome: str = "success"  # "failure" for the kinds that record something refused or failed

    @property
    def event_label(self) -> str:
        return EVENT_TYPES[self.event_code]

    @property
    def event_uri(self) -> str:
        return f"{EVENT_TYPE_SCHEME}/{self.event_code}"

    @property
    def role_label(self) -> str:
        return AGENT_ROLES[self.role_code]

    @property
    def role_uri(self) -> str:
        return f"{AGENT_ROLE_SCHEME}/{self.role_code}"


_M = PremisMapping
#: The agent every package names besides the actors: this software.
_SOFTWARE = "evidence-ingest"
_FAILED = "failure"
#: Every custody kind (the comments say why a kind has its term where the choice is not obvious).
_MAPPING: dict[CustodyKind, PremisMapping] = {
    CustodyKind.DOCKED: _M("ins", "exe"),
    CustodyKind.COPIED: _M("mes", "exe"),  # copied off the device and hashed: the SHA-256 everything rests on
    CustodyKind.SIGHTED: _M("mes", "exe"),  # the same bytes hashed again on another device or path
    CustodyKind.ARCHIVED: _M("ing", "exe"),  # written to the WORM store: added to the preservation repository
    CustodyKind.VERIFIED: _M("fix", "val"),
    CustodyKind.MANIFESTED: _M("dsg", "exe"),
    CustodyKind.KEY_REGISTERED: _M("acc", "imp"),  # a public key entered the catalogue's inventory
    CustodyKind.ROOT_KEY_CREATED: _M("cre", "imp"),
    CustodyKind.KEY_CERTIFIED: _M("dsg", "aut"),  # the root signed a certificate
    CustodyKind.KEY_REVOKED: _M("poa", "aut"),  # signatures by the key are not trusted from a time on
    CustodyKind.KEY_ROTATED: _M("cre", "imp"),  # a new certified key replaces the old one
    CustodyKind.STAMPED: _M("mem", "imp"),
    CustodyKind.RESTAMPED: _M("mem", "imp"),
    CustodyKind.ACCESSED: _M("dis", "imp"),
    CustodyKind.VIEWED: _M("dsp", "imp"),
    CustodyKind.ACCESS_REFUSED: _M("dis", "imp", _FAILED),
    CustodyKind.EXPORTED: _M("dis", "imp"),  # handed over in an evidence package
    CustodyKind.RETENTION_CHANGED: _M("poa", "exe"),
    CustodyKind.LEGAL_HOLD: _M("poa", "exe"),
    CustodyKind.DISPOSED: _M("del", "imp"),
    CustodyKind.INGEST_FAILED: _M("ing", "exe", _FAILED),
    CustodyKind.UNDOCKED: _M("ine", "exe"),
    CustodyKind.CLEARED: _M("del", "exe"),  # the device's copy, after the archived copy was verified
    CustodyKind.CASE_OPENED: _M("cre", "imp"),
    CustodyKind.CASE_LINKED: _M("mem", "imp"),
    CustodyKind.CASE_UNLINKED: _M("mem", "imp"),
    CustodyKind.CASE_CLOSED: _M("mem", "imp"),
    CustodyKind.CASE_REOPENED: _M("mem", "imp"),
    CustodyKind.CASE_ACTION_RECORDED: _M("mem", "imp"),  # what a case records of its actions
    CustodyKind.DOCUMENT_ATTACHED: _M("ing", "imp"),
    CustodyKind.REDACTED: _M("red", "imp"),  # a new object derived from the original, which stays as it was
    CustodyKind.SNAPSHOT_TAKEN: _M("cre", "imp"),  # a still created from one frame of the original (untouched)
    CustodyKind.DEVICE_CLOCK_SET: _M("ine", "exe"),  # about the device, not an object: its clock set at a dock
    CustodyKind.DISPOSAL_PROPOSED: _M("app", "imp"),  # what is due, evaluated for (no further) retention
    CustodyKind.DISPOSAL_APPROVED: _M("app", "aut"),
    CustodyKind.DISPOSAL_FAILED: _M("del", "exe", _FAILED),
    CustodyKind.DISPOSAL_RECORDED: _M("dea", "exe"),  # the signed record that the object left the inventory
    CustodyKind.FIXITY_FAILED: _M("fix", "val", _FAILED),
    CustodyKind.USER_CHANGED: _M("poa", "imp"),  # roles are who may do what: an access policy
    CustodyKind.REGISTRY_CHANGED: _M("mem", "imp"),
    CustodyKind.SIGNED_IN: _M("val", "imp"),  # credentials checked
    CustodyKind.SIGN_IN_FAILED: _M("val", "imp", _FAILED),
    CustodyKind.SIGNED_OUT: _M("val", "imp"),  # the end of what the sign-in validated
    CustodyKind.SPOT_CHECK_DRAWN: _M("val", "val"),
    CustodyKind.REVIEWED: _M("val", "val"),
    CustodyKind.SPOT_CHECK_SIGNED: _M("dsg", "aut"),  # the signed result: a signature, by the reviewer's authority
    CustodyKind.VERIFICATION_RUN: _M("fix", "val"),
    CustodyKind.INTEGRITY_CHECKED: _M("val", "val"),  # decoded against its format: a validation
    CustodyKind.DISCARDED: _M("app", "exe"),  # derivatives a device profile marks as not worth keeping
    CustodyKind.POLICY_ADOPTED: _M("poa", "aut"),
    CustodyKind.CLASSIFIED: _M("poa", "imp"),  # who may read it: an access policy on the object
    CustodyKind.ACCESS_GRANTED: _M("poa", "aut"),
    CustodyKind.ACCESS_REVOKED: _M("poa", "aut"),
    CustodyKind.RELEASE_PROPOSED: _M("app", "imp"),  # appraised for release
    CustodyKind.RELEASE_APPROVED: _M("dis", "aut"),  # dissemination, authorised by legal review
    CustodyKind.RELEASE_REJECTED: _M("app", "aut"),
    CustodyKind.RELEASE_WITHDRAWN: _M("poa", "aut"),
    CustodyKind.SHARE_CREATED: _M("poa", "aut"),  # who may fetch it, until when: an access policy
    CustodyKind.SHARE_OPENED: _M("val", "imp"),  # the one-time code checked
    CustodyKind.SHARE_DOWNLOADED: _M("dis", "exe"),  # dissemination to the recipient
    CustodyKind.SHARE_REVOKED: _M("poa", "aut"),  # the retention policy in force: a policy assignment, authorised
}


def premis_mapping(kind: str | CustodyKind) -> PremisMapping:
    """The PREMIS terms of custody kind *kind* (ValueError naming it if it has none)."""
    try:
        return _MAPPING[CustodyKind(kind)]
    except ValueError:
        raise ValueError(f"custody kind {kind!r} is not one this software writes, so it has no PREMIS event "
                         "type") from None
    except KeyError:
        raise ValueError(f"custody kind {kind!r} has no PREMIS event type yet: add it to catalog.premis._MAPPING"
                         ) from None


def premis_event_type(kind: str | CustodyKind) -> tuple[str, str]:
    """The PREMIS event type of custody kind *kind*: (label, id.loc.gov URI), e.g. ("ingestion", ".../ing")."""
    found = premis_mapping(kind)
    return found.event_label, found.event_uri


def premis_fields(kind: str | CustodyKind) -> dict[str, str]:
    """The PREMIS terms as extra fields of a line of a package's events.jsonl (outside the hashed body)."""
    found = premis_mapping(kind)
    return {"premis_event_type": found.event_label, "premis_event_type_uri": found.event_uri,
            "premis_agent_role": found.role_label, "premis_agent_role_uri": found.role_uri}


def _outcome(event: dict[str, Any], mapping: PremisMapping) -> str:
    """The event's outcome: the kind's, unless its details say a check found problems."""
    details = event.get("details") if isinstance(event.get("details"), dict) else {}
    assert isinstance(details, dict)
    if event.get("kind") == CustodyKind.VERIFICATION_RUN.value and details.get("problems"):
        return _FAILED
    if event.get("kind") == CustodyKind.INTEGRITY_CHECKED.value and details.get("status") not in (None, "ok"):
        return "warning"
    return mapping.outcome


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{PREMIS_NS}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def _identifier(parent: ET.Element, what: str, kind: str, value: str) -> None:
    """A PREMIS <{what}Identifier> with its <{what}IdentifierType> and <{what}IdentifierValue>."""
    holder = _sub(parent, f"{what}Identifier")
    _sub(holder, f"{what}IdentifierType", kind)
    _sub(holder, f"{what}IdentifierValue", value)


def _object(root: ET.Element, item: dict[str, Any], body: dict[str, Any] | None) -> None:
    """One premis:object (a file) for a package item: identifiers, SHA-256 fixity and size (as its newest signed
    manifest *body* states them), format (the container the body names, else the media kind), original name."""
    obj = _sub(root, "object", **{f"{{{XSI_NS}}}type": "premis:file"})
    _identifier(obj, "object", "evidence-ingest recording id", str(item["recording_id"]))
    if item.get("file"):
        _identifier(obj, "object", "package path", str(item["file"]))
    traits = _sub(obj, "objectCharacteristics")
    _sub(traits, "compositionLevel", "0")
    fixity = _sub(traits, "fixity")
    _sub(fixity, "messageDigestAlgorithm", "SHA-256", authority="cryptographicHashFunctions",
         authorityURI=HASH_SCHEME, valueURI=f"{HASH_SCHEME}/sha256")
    _sub(fixity, "messageDigest", str((body or item)["sha256"]))
    _sub(fixity, "messageDigestOriginator", "evidence-ingest (hashed as the file entered the archive)")
    _sub(traits, "size", str((body or item).get("size_bytes", 0)))
    designation = _sub(_sub(traits, "format"), "formatDesignation")
    media = (body or {}).get("media") or {}
    _sub(designation, "formatName", str(media.get("container") or item.get("media_kind") or "unknown"))
    _sub(obj, "originalName", str(item.get("original_name", "")))


def _event(root: ET.Element, event: dict[str, Any]) -> None:
    """One premis:event for a custody event: type (with its URI), time, details, outcome, agent and object."""
    mapping = premis_mapping(str(event["kind"]))
    element = _sub(root, "event")
    _identifier(element, "event", "evidence-ingest custody event id", str(event["id"]))
    _sub(element, "eventType", mapping.event_label, authority="eventType", authorityURI=EVENT_TYPE_SCHEME,
         valueURI=mapping.event_uri)
    _sub(element, "eventDateTime", str(event["at"]))
    detail = _sub(element, "eventDetailInformation")
    details = json.dumps(event.get("details") or {}, ensure_ascii=False, sort_keys=True)
    _sub(detail, "eventDetail", f"{event['kind']} (custody chain hash {event['hash']}): {details}")
    outcome = _sub(element, "eventOutcomeInformation")
    _sub(outcome, "eventOutcome", _outcome(event, mapping))
    link = _sub(element, "linkingAgentIdentifier")
    _sub(link, "linkingAgentIdentifierType", "evidence-ingest actor")
    _sub(link, "linkingAgentIdentifierValue", str(event["actor"]))
    _sub(link, "linkingAgentRole", mapping.role_label, authority="eventRelatedAgentRole",
         authorityURI=AGENT_ROLE_SCHEME, valueURI=mapping.role_uri)
    if event.get("recording_id") is not None:
        target = _sub(element, "linkingObjectIdentifier")
        _sub(target, "linkingObjectIdentifierType", "evidence-ingest recording id")
        _sub(target, "linkingObjectIdentifierValue", str(event["recording_id"]))


def _agent(root: ET.Element, actor: str) -> None:
    """One premis:agent: a station (software), this software, or a person (the catalogue's user name)."""
    agent = _sub(root, "agent")
    _identifier(agent, "agent", "evidence-ingest actor", actor)
    _sub(agent, "agentName", actor)
    _sub(agent, "agentType", "software" if actor.startswith(("station:", "worker", "evidence-ingest")) else "person")
    if actor == _SOFTWARE:
        _sub(agent, "agentVersion", software_version())


def premis_document(package: PackageFiles) -> ET.Element:
    """The premis:premis element for a package's items and custody events (objects, events, agents: the order
    the PREMIS 3 schema asks for)."""
    ET.register_namespace("premis", PREMIS_NS)
    ET.register_namespace("xsi", XSI_NS)
    root = ET.Element(f"{{{PREMIS_NS}}}premis", {"version": "3.0"})
    for item in package.items:
        _object(root, item, package.newest_body(item))
    events = package.events
    for event in events:
        _event(root, event)
    for actor in sorted({str(e["actor"]) for e in events} | {_SOFTWARE}):
        _agent(root, actor)
    return root


def write_premis(data_dir: Path) -> Path:
    """Write *data_dir*/premis.xml (PREMIS 3.0) from *data_dir*/items.json and custody/events.jsonl, the files
    of a package being built (*data_dir* becomes the bag's data/). Returns the file written."""
    tree = ET.ElementTree(premis_document(read_package(data_dir)))
    ET.indent(tree, space=" ")
    target = data_dir / "premis.xml"
    tree.write(target, encoding="UTF-8", xml_declaration=True)
    return target
