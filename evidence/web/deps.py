"""What every route shares: the database session, the signed-in caller and their rights, page rendering."""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlencode
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine
from sqlmodel import Session

from catalog import PolicyNotAdopted
from catalog.access import Scope, record_refusal, user_scope
from catalog.cases import Attach
from catalog.checklist_rules import Checklist
from catalog.custody_words import event_name
from catalog.device_alerts import AlertRules
from catalog.policy_adoption import require_policy
from catalog.retention import RetentionPolicy
from catalog.said import Said, listed, said_in, say
from catalog.sensitivity import CLASSES
from catalog.sensitivity import label as sensitivity_label
from catalog.sign_in import find_session
from catalog.types import utcnow
from catalog.user_models import User, WebSession
from catalog.users import PERMISSIONS
from evidence.web.i18n import DEFAULT_LANGUAGE, LANGUAGES, gettext_for
from evidence.web.words import link_source_words, period_words, retention_words, scope_words
from ingest.config import Settings
from storage import EvidenceStore

logger = logging.getLogger(__name__)

__all__ = ["DB", "DONE", "NAV", "Caller", "PageInstead", "PlayCaller", "SearchCaller", "StampCaller", "ViewCaller",
           "WebConfig", "api_caller", "caller", "class_word", "done", "language", "render", "signed_in"]

SESSION_COOKIE = "evidence_session"
PRE_CSRF_COOKIE = "evidence_csrf"  # double-submit token for the sign-in form (no session yet)
LANG_COOKIE = "lang"
DONE_COOKIE = "evidence_done"  # what the last form post did, said once on the page it redirected to

#: What a form post that succeeded says on the next page, by name (message ids; the values are filled in after).
DONE = {
    "linked": "{n} recordings added to case {case}.",
    "linked_already": "{n} recordings added to case {case}; {already} were in it already.",
    "tagged": "{n} recordings tagged.",
    "classified": "{n} recordings given class {to}.",
    "unchanged": "Nothing to change: the selected recordings are like that already.",
    "snapshot": "The frame at {at} s is kept as item {still} of case {case}.",
    "search_saved": "Search kept as “{search}”.",
    "case_opened": "Case {case} opened.",
    "linked_one": "Added to case {case}.",
    "attached": "{n} text records attached to case {case}.",
    "unlinked": "Recording {recording} taken out of case {case}.",
    "case_closed": "Case {case} closed on {day}.",
    "case_reopened": "Case {case} reopened.",
    "case_classified": "Case {case} and its items given class {to}.",
    "case_granted": "{person} may now see the restricted items of case {case}.",
    "case_grant_revoked": "{person}'s access to the restricted items of case {case} was revoked.",
    "class_one": "Recording {recording} given class {to}.",
    "stamped": "Stamp saved as revision r{revision}.",
    "redaction_asked": "The redacted copy is being made; this page follows it.",
    "release_proposed": "Release {release} proposed: it waits for legal review.",
    "release_approved": "Release {release} approved.",
    "release_rejected": "Release {release} rejected.",
    "release_withdrawn": "Release {release} withdrawn.",
    "share_revoked": "Share link {link} revoked.",
    "batch_proposed": "Disposal batch {batch} proposed: it waits for a second person's approval.",
    "batch_disposed": "Disposal batch {batch} carried out.",
    "nothing_due": "Nothing is due for disposal.",
    "batch_approved": "Disposal batch {batch} approved and carried out.",
    "spot_check_drawn": "Spot check {check} drawn: {n} recordings.",
    "outcome_recorded": "Outcome recorded for item {item}.",
    "spot_check_signed": "Spot check {check} signed off; its signed result is stored.",
    "user_add": "User {person} added.",
    "user_roles": "The roles of {person} were changed.",
    "user_password": "The password of {person} was set.",
    "user_scope": "The scope of {person} was changed.",
    "user_deactivate": "{person} was deactivated; their sessions ended.",
    "user_activate": "{person} was activated.",
    "officer_saved": "Officer {officer} saved.",
    "station_saved": "Station {station} saved.",
    "device_saved": "Device {device} saved.",
    "action_recorded": "Action {id} of case {case} recorded.",
    "actions_imported": "{file}: {added} actions added, {unchanged} recorded already, {corrected} corrected.",
    "search_forgotten": "Saved search “{search}” deleted.",
}


#: The deployment settings at their defaults (ingest.settings_table): a WebConfig left at its defaults behaves as
#: `evidence serve` does with nothing set.
_DEFAULT = Settings.defaults()


@dataclass(frozen=True)
class WebConfig:
    """What the web app needs from the deployment; each default is the deployment setting's own (Settings)."""

    engine: Engine
    store: EvidenceStore
    session_ttl: timedelta = timedelta(hours=12)  # a sign-in lasts this long (not a deployment setting)
    secure_cookies: bool = _DEFAULT.web_secure_cookies  # True behind TLS (a reverse proxy)
    station: str = "web"  # signs the manifests of stamp revisions made in the browser
    key: Ed25519PrivateKey | None = None
    case_pattern: str = _DEFAULT.case_pattern  # EVIDENCE_CASE_PATTERN
    access_reason: str = _DEFAULT.access_reason  # the first step that needs a stated reason
    zone: str = _DEFAULT.station_tz  # the agency's clock: times typed without a zone are read in it
    policy: RetentionPolicy = field(default_factory=lambda: _DEFAULT.retention_policy)
    disposal_approval: bool = _DEFAULT.approval_required  # EVIDENCE_DISPOSAL_APPROVAL=required
    attach: Attach | None = None  # stores an uploaded text record for a case (wired by `evidence serve`)
    staged_alarm_s: float = _DEFAULT.staged_alarm_s  # EVIDENCE_STAGED_ALARM_S
    device_rules: AlertRules = field(default_factory=lambda: AlertRules(  # EVIDENCE_DEVICE_SILENT_DAYS, _CLOCK_DRIFT_S
        silent_days=_DEFAULT.device_silent_days, drift_s=_DEFAULT.clock_drift_s))
    metrics_token: str = str(_DEFAULT.metrics_token)  # EVIDENCE_METRICS_TOKEN: opens /metrics, API docs
    map_tiles: str = _DEFAULT.map_tiles  # EVIDENCE_MAP_TILES: the maps' tile server; "": a plain grid
    map_attribution: str = _DEFAULT.map_attribution  # EVIDENCE_MAP_ATTRIBUTION
    class_names: Mapping[str, tuple[str, str]] = field(  # EVIDENCE_SENSITIVITY_NAMES
        default_factory=lambda: dict(_DEFAULT.sensitivity_names))
    action_checklist: Checklist = _DEFAULT.action_checklist  # EVIDENCE_ACTION_CHECKLIST
    action_tolerance_s: float = _DEFAULT.action_tolerance_s  # EVIDENCE_ACTION_TOLERANCE_S
    settings: Settings | None = None  # the deployment's (from_settings): the export key, the timestamp authority
    #: Start the installation's renderer (ingest.media_work.start_renderer) for work asked for here, a redaction:
    #: where no broker is configured nothing else would take it (from_settings: the embedded default)
    renderer: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, *, engine: Engine, store: EvidenceStore,
                      key: Ed25519PrivateKey | None = None, attach: Attach | None = None) -> WebConfig:
        """The web app's configuration from the deployment's Settings (what `evidence serve` runs with)."""
        return cls(engine=engine, store=store, secure_cookies=settings.web_secure_cookies, station=settings.station,
                   key=key, case_pattern=settings.case_pattern, access_reason=settings.access_reason,
                   zone=settings.station_tz, policy=settings.retention_policy,
                   disposal_approval=settings.approval_required, attach=attach,
                   staged_alarm_s=settings.staged_alarm_s, metrics_token=str(settings.metrics_token),
                   device_rules=AlertRules(silent_days=settings.device_silent_days, drift_s=settings.clock_drift_s),
                   class_names=settings.sensitivity_names, settings=settings, renderer=not settings.broker_url,
                   map_tiles=settings.map_tiles, map_attribution=settings.map_attribution,
                   action_checklist=settings.action_checklist, action_tolerance_s=settings.action_tolerance_s)

    def today(self) -> date:
        """Today's date on the agency's calendar (case dates, certificate validity)."""
        return datetime.now(ZoneInfo(self.zone)).date()


@dataclass
class Caller:
    user: User
    web_session: WebSession

    @property
    def scope(self) -> Scope:
        return user_scope(self.user)

    def may(self, action: str) -> bool:
        return bool(PERMISSIONS[action] & set(self.user.roles))


def _db(request: Request) -> Iterator[Session]:
    with Session(request.app.state.config.engine) as session:
        yield session


DB = Annotated[Session, Depends(_db)]


def language(request: Request) -> str:
    wanted = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or DEFAULT_LANGUAGE
    return wanted if wanted in LANGUAGES else DEFAULT_LANGUAGE


def class_word(request: Request, name: str) -> str:
    """Sensitivity class *name* as the reader's language and the agency's names (EVIDENCE_SENSITIVITY_NAMES) say
    it: what a page, and a message after a form post, calls it."""
    return sensitivity_label(name, "en" if language(request) == "en" else "zh", request.app.state.config.class_names)


def caller(request: Request, session: Session) -> Caller | None:
    found = find_session(session, request.cookies.get(SESSION_COOKIE), now=utcnow())
    return None if found is None else Caller(user=found[1], web_session=found[0])


def _refused(request: Request, session: Session, who: Caller, action: str) -> None:
    """The refusal of a signed-in caller whose roles do not allow *action*, as an `access_refused` event."""
    record_refusal(session, who.user.name, action=action, why="role",
                   details={"roles": list(who.user.roles), "via": "web", "method": request.method,
                            "path": request.url.path[:500]})


def api_caller(action: str) -> Any:
    """A dependency: the signed-in caller whose roles allow *action* (401/403 otherwise; writes need the
    session's X-CSRF-Token)."""
    def check(request: Request, session: DB) -> Caller:
        who = caller(request, session)
        if who is None:
            raise HTTPException(401, say("sign in first"))
        if not who.may(action):
            _refused(request, session, who, action)
            raise HTTPException(403, say("your roles ({roles}) do not allow {action}",
                                         roles=listed([say(role) for role in who.user.roles]), action=action))
        if request.method not in ("GET", "HEAD") and \
                request.headers.get("x-csrf-token") != who.web_session.csrf_token:
            raise HTTPException(403, say("missing or wrong X-CSRF-Token"))
        return who
    return Depends(check)


SearchCaller = Annotated[Caller, api_caller("search")]
ViewCaller = Annotated[Caller, api_caller("view")]


PlayCaller = Annotated[Caller, api_caller("play")]
StampCaller = Annotated[Caller, api_caller("stamp")]


#: The header's links: (path, label, the action the role must allow).
NAV = (("/", "Search", "search"), ("/cases", "Cases", "cases"), ("/retention", "Retention and disposal", "retention"),
       ("/releases", "Releases", "releases"), ("/spot-checks", "Spot checks", "spotcheck"),
       ("/stats", "Statistics", "statistics"), ("/coverage", "Coverage", "coverage"),
       ("/checklist", "Action checklist", "cases"),
       ("/devices", "Recorders", "devices"), ("/audit", "Audit", "audit"),
       ("/admin", "Administration", "admin"))


class PageInstead(Exception):
    """What signed_in raises when the caller may not have the page: *response* (the sign-in redirect or a 403
    page) is what the app sends (evidence.web.app), so a route goes on with the caller signed_in returns."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"answered {response.status_code} instead of the page")
        self.response = response


def signed_in(request: Request, session: Session, action: str, csrf: str | None = None) -> Caller:
    """The caller of a page whose role allows *action*; otherwise PageInstead with the sign-in page or a 403 page.
    A form post passes its *csrf* field, which must be the session's token (403 otherwise)."""
    who = caller(request, session)
    if who is None:
        raise PageInstead(RedirectResponse("/login", status_code=303))
    if not who.may(action):
        _refused(request, session, who, action)
        lang = language(request)
        raise PageInstead(render(request, "message.html", lang, 403, user=who.user, csrf=who.web_session.csrf_token,
                                 message=gettext_for(lang)("Your role does not allow this.")))
    if csrf is not None and not secrets.compare_digest(csrf, who.web_session.csrf_token):
        raise HTTPException(403, say("missing or wrong form token"))
    if csrf is not None and action in RETENTION_ACTIONS:
        _policy_in_force(request, session, who, action)
    return who


#: Form posts that decide retention (or dispose): refused before they change anything while this server's terms
#: are not the adopted policy (a server left running after an administrator adopted new terms).
RETENTION_ACTIONS = frozenset({"manage_cases", "stamp", "propose_disposal", "approve_disposal"})


def _policy_in_force(request: Request, session: Session, who: Caller, action: str) -> None:
    config: WebConfig = request.app.state.config
    try:
        require_policy(session, config.policy, approval_required=config.disposal_approval, doing=action)
    except PolicyNotAdopted as exc:
        logger.error("Web %s by %s refused: %s", action, who.user.name, exc)
        lang = language(request)
        raise PageInstead(render(request, "message.html", lang, 409, user=who.user,
                                 csrf=who.web_session.csrf_token, message=str(exc))) from exc


def _seal(payload: str, key: str) -> str:
    return hmac.new(key.encode(), payload.encode(), hashlib.sha256).hexdigest()


def done(request: Request, who: Caller, response: Response, name: str, **values: str | int) -> Response:
    """*response* (a redirect after a form post) with what the post did (DONE[*name*]) said once on the next
    page rendered: the post is not repeated by a reload, and the clerk still sees that it worked. The cookie is
    sealed with the caller's session (its form token): one planted by anyone else says nothing."""
    assert name in DONE, name
    payload = json.dumps([name, values], ensure_ascii=False)
    response.set_cookie(DONE_COOKIE, quote(json.dumps([payload, _seal(payload, who.web_session.csrf_token)])),
                        max_age=120, httponly=True, samesite="strict", secure=request.app.state.config.secure_cookies)
    return response


def _done_text(request: Request, lang: str, key: str | None) -> str | None:
    """The message of the cookie `done` set for this session (*key*: its form token), translated; None without
    one, or with one this server did not set for it."""
    raw = request.cookies.get(DONE_COOKIE, "")
    if not key or len(raw) > 2000:  # this server's are short; a longer one was not set here
        return None
    try:
        payload, seal = json.loads(unquote(raw))
        if not secrets.compare_digest(str(seal), _seal(str(payload), key)):
            return None
        name, values = json.loads(payload)
        return str(gettext_for(lang)(DONE[name]).format(**{k: str(v) for k, v in values.items()}))
    except Exception:  # noqa: BLE001 - whatever a forged cookie holds (deep nesting: RecursionError), no message
        return None


def render(request: Request, name: str, lang: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page in *lang*; a `?lang=` switch (which keeps the page's other parameters) is remembered in a cookie.
    What the last form post did (`done`) is said on it once. An `error` (or each of `errors`) made with
    catalog.said.say is said in *lang*."""
    translate = gettext_for(lang)
    for key in ("error", "message"):
        if isinstance(context.get(key), Said):
            context[key] = said_in(context[key], translate)
    if isinstance(context.get("errors"), list):
        context["errors"] = [said_in(e, translate) if isinstance(e, Said) else e for e in context["errors"]]
    user: User | None = context.get("user")
    roles = set(user.roles) if user is not None else set()
    nav = [(path, label) for path, label, action in NAV if PERMISSIONS[action] & roles]
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    switches = {code: f"{request.url.path}?{urlencode([*kept, ('lang', code)])}" for code in LANGUAGES}
    response: HTMLResponse = request.app.state.templates.TemplateResponse(request, name, {
        "_": gettext_for(lang), "lang": lang, "languages": LANGUAGES, "nav": nav, "lang_links": switches,
        "class_label": lambda name: sensitivity_label(name, "zh" if lang.startswith("zh") else "en",
                                                      request.app.state.config.class_names),
        "classes": CLASSES, "rule_text": lambda text: retention_words(text, lang),
        "period_text": lambda text: period_words(text, lang), "scope_text": lambda scope: scope_words(scope, lang),
        "source_text": lambda text: link_source_words(text, lang),
        "event_text": lambda kind: event_name(kind, "en" if lang == "en" else "zh"),
        "path": request.url.path,
        "done": _done_text(request, lang, context.get("csrf")) if DONE_COOKIE in request.cookies else None,
        **context}, status_code=status)
    if DONE_COOKIE in request.cookies:
        response.delete_cookie(DONE_COOKIE, httponly=True, samesite="strict",
                               secure=request.app.state.config.secure_cookies)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, samesite="lax", secure=request.app.state.config.secure_cookies)
    return response
