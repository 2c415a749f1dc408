"""The retention policy in force: adopted in the catalogue, as a custody event, never taken from a caller's
environment.

Routine period, the agency's zone, the case types (with their periods) and whether a disposal needs a second
person (EVIDENCE_ROUTINE_RETENTION_MONTHS, EVIDENCE_STATION_TZ, EVIDENCE_CASE_TYPES, EVIDENCE_DISPOSAL_APPROVAL)
were read by each command from its own environment: a clerk who ran `evidence retention apply` with a case-types
file of their own lifted the holds of a permanent case type, `EVIDENCE_DISPOSAL_APPROVAL=none evidence retention
sweep` disposed without a second person, and verify, run the same way, agreed (a review, 2026-12-02).

Now the terms are adopted once, by a `policy_adopted` custody event that states them whole with their
fingerprint (SHA-256 of their RFC 8785 form): the station adopts the terms it runs with at its first start or
dock (`ensure_policy` with *adopt_as*), never a user's command; every later command that writes retention, the
station, the workers and the web app refuse other terms (PolicyNotAdopted: both fingerprints and every
difference), and the functions that write retention refuse too; a service still running with the old terms after
an administrator adopted new ones decides new recordings' retention by the adopted terms (`policy_in_force`) and
nothing under its own. An administrator changes the policy
with `evidence retention adopt --reason …` (the new terms in that command's environment), a custody event like
any other; verify checks every recording against the terms the chain adopted, whatever the environment it runs
in.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from catalog.canonical import jcs
from catalog.case_models import Case
from catalog.custody import CustodyKind, append_event
from catalog.db import begin_write
from catalog.errors import PolicyInvalid, PolicyNotAdopted
from catalog.models import CustodyEvent
from catalog.retention import CaseType, RetentionPolicy
from catalog.said import listed, say
from storage import RetentionRefused

__all__ = ["AdoptedPolicy", "PolicyTerms", "adopt_policy", "adopted_policy", "ensure_policy", "policy_differences",
           "policy_in_force", "require_policy"]

logger = logging.getLogger(__name__)
#: (adopted fingerprint, this process's fingerprint) pairs already logged by policy_in_force: one warning each.
_WARNED: set[tuple[str, str]] = set()

#: How the reason of a policy the station adopted because none was adopted yet begins.
FIRST_USE = "first use"
_APPROVALS = ("required", "none")
#: Longest period adopted terms may state: dates past year 9999 do not exist (an edited event said 10**30 months).
_MAX_YEARS = 5000


@dataclass(frozen=True)
class PolicyTerms:
    """Everything that decides how long evidence is kept and who may dispose of it."""

    routine_months: int
    zone: str
    case_types: tuple[CaseType, ...]  # in code order
    disposal_approval: str  # required | none

    @classmethod
    def of(cls, policy: RetentionPolicy, *, disposal_approval: str) -> PolicyTerms:
        if disposal_approval not in _APPROVALS:
            raise PolicyInvalid(say("disposal approval {approval} is not one of {approvals}",
                                    approval=repr(disposal_approval), approvals=listed(_APPROVALS)))
        return cls(routine_months=policy.routine_months, zone=policy.zone,
                   case_types=tuple(policy.case_types[code] for code in sorted(policy.case_types)),
                   disposal_approval=disposal_approval)

    @classmethod
    def with_approval(cls, policy: RetentionPolicy, *, approval_required: bool) -> PolicyTerms:
        """The terms of *policy* with the disposal approval rule given as a flag (the web app's, a sweep's)."""
        return cls.of(policy, disposal_approval="required" if approval_required else "none")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PolicyTerms:
        """The terms a `policy_adopted` event states (PolicyInvalid when they are not whole)."""
        try:
            kinds = tuple(CaseType(code=str(t["code"]), name=str(t["name"]), name_en=str(t["name_en"]),
                                   years=None if t["years"] is None else int(t["years"]))
                          for t in data["case_types"])
            terms = cls(routine_months=int(data["routine_months"]), zone=str(data["zone"]), case_types=kinds,
                        disposal_approval=str(data["disposal_approval"]))
            terms.policy()  # a zone or period no decision could use (ZoneInfoNotFoundError is a KeyError)
            if terms.routine_months > 12 * _MAX_YEARS or any(t.years is not None and not 0 < t.years <= _MAX_YEARS
                                                               for t in terms.case_types):
                raise PolicyInvalid(say("a period over {max} years, which no date can hold", max=_MAX_YEARS))
            if terms.disposal_approval not in _APPROVALS:
                raise PolicyInvalid(say("disposal approval {approval} is not one of {approvals}",
                                        approval=repr(terms.disposal_approval), approvals=listed(_APPROVALS)))
            return terms
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError, PolicyInvalid,
                RetentionRefused) as exc:  # ArithmeticError: a number like 1e999 (JSON's inf) given as months
            raise PolicyInvalid(say("the adopted retention policy is not whole ({kind}: {problem})",
                                    kind=type(exc).__name__, problem=str(exc))) from exc

    def as_json(self) -> dict[str, Any]:
        return {"routine_months": self.routine_months, "zone": self.zone,
                "case_types": [{"code": t.code, "name": t.name, "name_en": t.name_en, "years": t.years}
                               for t in self.case_types],
                "disposal_approval": self.disposal_approval}

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(jcs(self.as_json())).hexdigest()

    def policy(self) -> RetentionPolicy:
        return RetentionPolicy(routine_months=self.routine_months, case_types={t.code: t for t in self.case_types},
                               zone=self.zone)


def policy_differences(adopted: PolicyTerms, proposed: PolicyTerms) -> list[str]:
    """Each way *proposed* differs from *adopted*, in words (empty: the same terms). Pure."""
    found = []
    for name in ("routine_months", "zone", "disposal_approval"):
        was, now = getattr(adopted, name), getattr(proposed, name)
        if was != now:
            found.append(f"{name}: adopted {was!r}, here {now!r}")
    before = {t.code: t for t in adopted.case_types}
    after = {t.code: t for t in proposed.case_types}
    for code in sorted(before.keys() | after.keys()):
        was_type, now_type = before.get(code), after.get(code)
        if was_type is None:
            assert now_type is not None
            found.append(f"case type {code}: not adopted, here {now_type.describe()}")
        elif now_type is None:
            found.append(f"case type {code}: adopted {was_type.describe()}, missing here")
        elif was_type != now_type:
            found.append(f"case type {code}: adopted {was_type.describe()} ({was_type.name}), here "
                         f"{now_type.describe()} ({now_type.name})")
    return found


@dataclass(frozen=True)
class AdoptedPolicy:
    terms: PolicyTerms
    event_id: int
    at: datetime
    by: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"fingerprint": self.terms.fingerprint, "terms": self.terms.as_json(), "event": self.event_id,
                "adopted_at": self.at.isoformat(), "adopted_by": self.by, "reason": self.reason}


def adopted_policy(session: Session) -> AdoptedPolicy | None:
    """The policy the custody chain adopted last (None: none yet)."""
    event = session.exec(select(CustodyEvent).where(CustodyEvent.kind == CustodyKind.POLICY_ADOPTED.value)
                         .order_by(col(CustodyEvent.id).desc()).limit(1)).first()
    if event is None:
        return None
    assert event.id is not None and event.at is not None
    details = event.details or {}
    if not isinstance(details, Mapping) or not isinstance(details.get("terms"), Mapping):
        raise PolicyInvalid(say("custody event {event} adopted no readable terms: the event was edited",
                                event=event.id))
    terms = PolicyTerms.from_json(details["terms"])
    if details.get("fingerprint") != terms.fingerprint:
        raise PolicyInvalid(say("custody event {event} adopted terms whose fingerprint is {fingerprint}, but it "
                                "states {stated}: the event was edited", event=event.id,
                                fingerprint=terms.fingerprint, stated=repr(details.get("fingerprint"))))
    return AdoptedPolicy(terms=terms, event_id=event.id, at=event.at, by=event.actor,
                         reason=str(details.get("reason") or ""))


def policy_in_force(session: Session, here: RetentionPolicy) -> RetentionPolicy:
    """The retention policy a station or worker decides by: the adopted terms, whatever *here* (its own
    environment's) says; *here* only while nothing is adopted. A service left running after an administrator adopted
    new terms then gives new recordings their retention under the new terms, not its old ones (a shorter routine
    period in its environment would have locked them too briefly). A difference is logged once per process, as a
    WARNING naming both fingerprints: restart the service with the adopted terms. An adoption the catalogue cannot
    state (an event edited behind the application's back: PolicyInvalid) never holds evidence up: it is logged
    (ERROR, once per process) and *here* decides; verify and every command that writes retention name it."""
    try:
        adopted = adopted_policy(session)
    except PolicyInvalid as exc:
        if (seen := ("invalid", str(exc))) not in _WARNED:
            _WARNED.add(seen)
            logger.error("%s; deciding retention by this process's own terms until it is put right.", exc)
        return here
    if adopted is None:
        return here
    mine = PolicyTerms.of(here, disposal_approval=adopted.terms.disposal_approval)
    if mine != adopted.terms and (seen := (adopted.terms.fingerprint, mine.fingerprint)) not in _WARNED:
        _WARNED.add(seen)
        logger.warning("This process runs with other retention terms (%s) than the catalogue adopted (%s, event %d "
                       "by %s): it decides by the adopted ones; restart it with them. %s.", mine.fingerprint[:12],
                       adopted.terms.fingerprint[:12], adopted.event_id, adopted.by,
                       "; ".join(policy_differences(adopted.terms, mine)))
    return adopted.terms.policy()


def adopt_policy(session: Session, terms: PolicyTerms, *, by: str, reason: str) -> AdoptedPolicy:
    """Adopt *terms* (a custody event stating them whole, and what they replace); committed by the caller.
    Adopting the terms already in force adds nothing."""
    if not reason.strip():
        raise PolicyInvalid(say("adopting a retention policy needs a reason"))
    used = set(session.exec(select(Case.case_type).distinct()))
    if missing := sorted(used - {t.code for t in terms.case_types}):
        raise PolicyInvalid(say("these terms have no case type {missing}, which cases here have: every retention "
                                "decision on them would fail; keep the type (its period may change)",
                                missing=", ".join(missing)))
    begin_write(session)  # two first uses at once: the second sees the first's event
    current = adopted_policy(session)
    if current is not None and current.terms == terms:
        return current
    details: dict[str, Any] = {"fingerprint": terms.fingerprint, "terms": terms.as_json(), "reason": reason}
    if current is not None:
        details["replaces"] = current.terms.fingerprint
        details["changes"] = policy_differences(current.terms, terms)
    event = append_event(session, CustodyKind.POLICY_ADOPTED, actor=by, details=details)
    assert event.id is not None and event.at is not None
    return AdoptedPolicy(terms=terms, event_id=event.id, at=event.at, by=by, reason=reason)


def ensure_policy(session: Session, terms: PolicyTerms, *, command: str, adopt_as: str | None = None,
                  required: bool = True) -> AdoptedPolicy | None:
    """The start check of the services, the web app and every command that writes retention: *terms* (from this
    process's environment) are the adopted ones; PolicyNotAdopted when they differ.

    With none adopted yet: *adopt_as* (the station's identity, already authorised as one: `station watch`, the
    worker, `evidence ingest`, `demo`, `archive-pending`) adopts them (committed; the event names that actor);
    a user's command (*required*) is refused (a review found a clerk's first command on an upgraded catalogue
    adopting a case-types file of their own); otherwise (the web app) None: nothing adopted, nothing compared."""
    current = adopted_policy(session)
    if current is None and adopt_as is not None:
        current = adopt_policy(session, terms, by=adopt_as, reason=f"{FIRST_USE}: no retention policy was adopted "
                                                                   f"yet; the terms {command} started with")
        session.commit()
    if current is None:
        if required:
            raise PolicyNotAdopted(doing=command, adopted="", here=terms.fingerprint, adopted_at=None,
                                   adopted_by="", differences=[])
        return None
    _same_or_refuse(current, terms, command)
    return current


def require_policy(session: Session, policy: RetentionPolicy, *, approval_required: bool | None = None,
                   doing: str) -> None:
    """Before writing retention (or disposing): *policy* (and, if given, the disposal approval rule) is the one
    adopted. Nothing adopted yet: nothing to compare (a catalogue used only through the library)."""
    current = adopted_policy(session)
    if current is None:
        return
    if approval_required is None:
        terms = PolicyTerms.of(policy, disposal_approval=current.terms.disposal_approval)
    else:
        terms = PolicyTerms.with_approval(policy, approval_required=approval_required)
    _same_or_refuse(current, terms, doing)


def _same_or_refuse(current: AdoptedPolicy, terms: PolicyTerms, doing: str) -> None:
    if current.terms != terms:
        raise PolicyNotAdopted(doing=doing, adopted=current.terms.fingerprint, here=terms.fingerprint,
                               adopted_at=current.at, adopted_by=current.by,
                               differences=policy_differences(current.terms, terms))
